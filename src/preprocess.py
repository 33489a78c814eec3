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
SPLITS = ("train", "test")


def main(params: Params) -> None:
    p = params.preprocess
    normalise = Normaliser(
        placeholders=p.placeholders, stem=p.stem, remove_stopwords=p.remove_stopwords
    )
    parts = {split: io.table_parts(RAW / f"{split}.parquet") for split in SPLITS}
    # Both splits' work counts towards compute.min_rows: a small test split of a large
    # corpus is normalised as tasks too.
    total = sum(io.table_rows(files) for files in parts.values())
    for split, files in parts.items():
        dest = PROCESSED / f"{split}.parquet"
        if len(files) > 1:
            frames = (io.read_table(part) for part in files)  # read as the tasks are sent
            rows = io.write_parts(dest, compute.ordered_map(normalised, frames, total, normalise))
        elif compute.uses_dask(total):  # one file: in pieces, as tasks
            raw = io.read_table(files[0])
            size = max(1000, compute.settings().partition_rows // 4)
            pieces = (raw.iloc[a:b] for a, b in compute.chunks(len(raw), size))
            done = list(compute.ordered_map(normalised, pieces, total, normalise))
            rows = len(frame := pd.concat(done, ignore_index=True))
            io.write_table(dest, frame)
        else:
            rows = len(frame := normalised(io.read_table(files[0]), normalise))
            io.write_table(dest, frame)
        log.info("%s: %d messages normalised", split, rows)


def normalised(raw: pd.DataFrame, normalise: Normaliser) -> pd.DataFrame:
    """A part of a raw split with its text normalised and the original kept as ``message``."""
    frame = raw.rename(columns={"text": "message"})
    frame["text"] = normalise.many(frame["message"])
    return frame[["text", "label", "message", "group"]]


if __name__ == "__main__":
    run(main, "preprocess", __doc__)
