"""Stage `preprocess`: normalise the text of both splits.

Applies the same normalisation that every consumer of the model applies at
inference (sentinelle.text): NFKC, look-alike letters folded, case-folded,
placeholders for URLs, e-mails, phone numbers, money and numbers, NLTK
tokenisation, optional stemming and stopword removal.
Writes data/processed/{train,test}.parquet with `text` (normalised), `label`,
`message` (the original text, for error analysis) and `group` (ingest's
near-duplicate group, which train keeps in one cross-validation fold). A split that
ingest partitioned is normalised part by part, each part a Dask task (`compute`),
into as many parts: no process holds the whole split.
"""

from pathlib import Path

import pandas as pd

from sentinelle import compute, io
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
        parts = io.table_parts(RAW / f"{split}.parquet")
        dest = PROCESSED / f"{split}.parquet"
        if len(parts) == 1:
            rows = len(frame := normalised(io.read_table(parts[0]), normalise))
            io.write_table(dest, frame)
        else:
            frames = (io.read_table(part) for part in parts)  # read as the tasks are sent
            rows = io.write_parts(
                dest, compute.ordered_map(normalised, frames, io.table_rows(parts), normalise)
            )
        log.info("%s: %d messages normalised", split, rows)


def normalised(raw: pd.DataFrame, normalise: Normaliser) -> pd.DataFrame:
    """A part of a raw split with its text normalised and the original kept as ``message``."""
    frame = raw.rename(columns={"text": "message"})
    frame["text"] = normalise.many(frame["message"])
    return frame[["text", "label", "message", "group"]]


if __name__ == "__main__":
    run(main, "preprocess", __doc__)
