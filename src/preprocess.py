"""Stage `preprocess`: normalise the text of both splits.

Applies the same normalisation that every consumer of the model applies at
inference (sentinelle.text): NFKC, look-alike letters folded, case-folded,
placeholders for URLs, e-mails, phone numbers, money and numbers, NLTK
tokenisation, optional stemming and stopword removal.
Writes data/processed/{train,test}.parquet with `text` (normalised), `label`,
`message` (the original text, for error analysis) and `group` (ingest's
near-duplicate group, which train keeps in one cross-validation fold).
"""

from pathlib import Path

from sentinelle import io
from sentinelle.params import Params
from sentinelle.stage import log, run
from sentinelle.text.normaliser import Normaliser

RAW = Path("data/raw")
PROCESSED = Path("data/processed")


def main(params: Params) -> None:
    p = params.preprocess
    normalise = Normaliser(
        placeholders=p.placeholders, stem=p.stem, remove_stopwords=p.remove_stopwords
    )
    for split in ("train", "test"):
        frame = io.read_table(RAW / f"{split}.parquet").rename(columns={"text": "message"})
        frame["text"] = normalise.many(frame["message"])
        io.write_table(PROCESSED / f"{split}.parquet", frame[["text", "label", "message", "group"]])
        log.info("%s: %d messages normalised", split, len(frame))


if __name__ == "__main__":
    run(main, "preprocess", __doc__)
