"""Stage `preprocess`: normalise the text of both splits.

Applies the same normalisation that every consumer of the model applies at
inference (sentinelle.text): NFKC, look-alike letters folded, case-folded,
placeholders for URLs, e-mails, phone numbers, money and numbers, NLTK
tokenisation, optional stemming and stopword removal.
Writes data/processed/{train,test}.parquet with `text` (normalised), `label`,
`message` (the original text, for error analysis) and `group` (ingest's
near-duplicate group, which train keeps in one cross-validation fold). A split that
ingest partitioned is normalised part by part into as many parts: no process holds
the whole split. Large inputs are normalised in pieces, as Dask tasks (`compute`).
"""

import pandas as pd

from sentinelle import compute, io, paths
from sentinelle.params import Params
from sentinelle.stage import log, run
from sentinelle.text.normaliser import Normaliser

RAW = paths.RAW
PROCESSED = paths.PROCESSED
SPLITS = ("train", "test")


def main(params: Params) -> None:
    p = params.preprocess
    normalise = Normaliser(
        placeholders=p.placeholders, stem=p.stem, remove_stopwords=p.remove_stopwords
    )
    parts = {split: io.table_parts(RAW / f"{split}.parquet") for split in SPLITS}
    rows = {split: [io.table_rows([part]) for part in files] for split, files in parts.items()}
    # Both splits' work counts towards compute.min_rows: a small test split of a large
    # corpus is normalised as tasks too.
    total = sum(sum(counts) for counts in rows.values())
    # As tasks: every part in pieces of a quarter partition, both splits in one stream, so
    # no worker idles while another ends a split (docs/performance.md).
    piece = max(1000, compute.settings().partition_rows // 4) if compute.uses_dask(total) else None
    bounds = {
        split: [compute.chunks(n, piece or n) or [(0, 0)] for n in counts]
        for split, counts in rows.items()
    }
    pieces = (
        frame.iloc[a:b]
        for split in SPLITS
        for part, part_bounds in zip(parts[split], bounds[split], strict=True)
        for frame in [io.read_table(part)]  # read as the tasks are sent
        for a, b in part_bounds
    )
    done = compute.ordered_map(normalised, pieces, total, normalise)
    with io.outputs() as out:  # both splits moved in together at the end
        for split in SPLITS:
            dest = out.path(PROCESSED / f"{split}.parquet")
            frames = (_joined([next(done) for _ in part_bounds]) for part_bounds in bounds[split])
            if len(parts[split]) > 1:  # partitioned by ingest: as many parts
                n = io.write_parts(dest, frames)
            else:
                n = len(frame := next(frames))
                io.write_table(dest, frame)
            log.info("%s: %d messages normalised", split, n)


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def normalised(raw: pd.DataFrame, normalise: Normaliser) -> pd.DataFrame:
    """A part of a raw split with its text normalised and the original kept as ``message``."""
    frame = raw.rename(columns={"text": "message"})
    frame["text"] = normalise.many(frame["message"])
    return frame[["text", "label", "message", "group"]]


if __name__ == "__main__":
    run(main, "preprocess", __doc__)
