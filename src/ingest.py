"""Stage `ingest`: read the raw labelled messages, deduplicate, split train/test.

Reads `ingest.source` (UCI layout: label<TAB>text), drops exact duplicate texts
and texts labelled both ways *before* splitting, then makes a stratified split
seeded by `base.seed` that keeps near-duplicates on one side.
Writes data/raw/{train,test}.parquet and data/report.json.
"""

from pathlib import Path

from sentinelle import dataset, io, sources
from sentinelle.params import Params
from sentinelle.stage import log, run

RAW = Path("data/raw")
REPORT = Path("data/report.json")


def main(params: Params) -> None:
    p = params.ingest
    source = Path(p.source)
    frame = sources.read_uci(source)
    cleaned = dataset.deduplicate(frame)
    train, test = dataset.split(cleaned.frame, p.test_size, params.base.seed)

    io.write_table(RAW / "train.parquet", train)
    io.write_table(RAW / "test.parquet", test)
    report = {
        "source": p.source,
        "source_sha256": io.sha256_file(source),
        "rows_read": len(frame),
        "exact_duplicates_dropped": cleaned.exact_duplicates,
        "conflicting_dropped": cleaned.conflicting,
        "rows": len(cleaned.frame),
        "splits": {
            name: {"rows": len(part), **part["label"].value_counts().sort_index().to_dict()}
            for name, part in (("train", train), ("test", test))
        },
    }
    io.write_json(REPORT, report)
    log.info(
        "%d rows read, %d duplicates and %d conflicting dropped; train %d, test %d",
        len(frame), cleaned.exact_duplicates, cleaned.conflicting, len(train), len(test),
    )  # fmt: skip


if __name__ == "__main__":
    run(main, "ingest", __doc__)
