"""Stage `ingest`: read the raw labelled messages, check them, deduplicate, split train/test.

Reads `ingest.source` (a path, an http(s) URL or s3://bucket/key; .gz and .zip
unpacked; or a folder of partitions, read as Dask tasks when large) in any supported
format (UCI, Kaggle spam.csv, CSV with any delimiter, TSV, JSONL, Parquet, XLSX/XLS/ODS;
with or without a header row),
applies the validation policies (`ingest.on_*`), drops exact duplicate texts and
resolves conflicting ones *before* splitting, then makes a stratified split
seeded by `base.seed` that keeps near-duplicates on one side. With `ingest.feedback`,
merges reported verdicts into the training split only, under the rules of
sentinelle.data.feedback (corroboration, caps, trust: feedback/trust.yaml).
Writes data/raw/{train,test}.parquet (a folder of parts when larger than
`compute.partition_rows`), data/report.json and dvclive/ingest/metrics.json.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dvclive import Live

from sentinelle import compute, io, paths
from sentinelle.data import cleaning, feedback, reading, tables, trust
from sentinelle.data.split import check_sizes, split
from sentinelle.params import Params
from sentinelle.stage import log, run

RAW = paths.RAW
REPORT = paths.DATA_REPORT
LIVE_DIR = paths.DVCLIVE_INGEST
PERCENTILES = (5, 25, 50, 75, 95, 99)
FEEDBACK_COUNTS = (
    "records",
    "skipped_lines",
    "added",
    "overridden",
    "trusted",
    "released",
    "corroborated",
    "unchanged",
    "quarantined",
    "capped",
    "repeats",
)


def main(params: Params) -> None:
    p = params.ingest
    # One file, or a folder of partitions (each read and checked as a Dask task when large).
    read = reading.read_source(p)
    assert read.valid is not None
    cleaned = cleaning.deduplicate(read.valid, read.where, read.unit, p)
    read = dataclasses.replace(read, valid=None)
    check_sizes(cleaned.frame, read.where, p.test_size, p.min_rows)
    lengths = cleaned.frame["text"].str.len().to_numpy()
    train, test = split(cleaned.frame, p.test_size, params.base.seed)
    cleaned = dataclasses.replace(cleaned, frame=None)  # train and test hold the texts now
    merged = None
    if p.feedback is not None:
        train, merged = feedback.merge(train, test, feedback.read(p), p, trust.load())
        for line in feedback.summary_lines(merged):
            log.info("%s", line)
        log.info(
            "feedback %s: %d records (%d lines skipped), %d added to train, %d overridden, "
            "%d quarantined, %d over the cap, refused %s; training spam share %.2f%% -> %.2f%%",
            p.feedback,
            merged["records"],
            merged["skipped_lines"],
            merged["added"],
            merged["overridden"],
            merged["quarantined"],
            merged["capped"],
            ", ".join(f"{k} {v}" for k, v in merged["refused"].items() if v) or "none",
            100 * merged["train_spam_share"]["before"],
            100 * merged["train_spam_share"]["after"],
        )

    report = build_report(p.source, read, cleaned, lengths, train, test)
    if merged is not None:
        report["feedback"] = merged
    # A large split is a partitioned table: a folder of compute.partition_rows-row parts.
    part_rows = compute.settings().partition_rows
    with io.outputs() as out:  # all moved in together at the end
        io.write_table(out.path(RAW / "train.parquet"), train, part_rows)
        io.write_table(out.path(RAW / "test.parquet"), test, part_rows)
        log_metrics(report, out.folder(LIVE_DIR))
        out.write_json(REPORT, report)
    log.info(
        "%s: %d rows read (%s); dropped %s; train %d, test %d",
        read.where,
        read.rows_read,
        describe_layout(read),
        ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v) or "none",
        len(train),
        len(test),
    )


def describe_layout(read: reading.Read) -> str:
    """How the file was read, in words: format, delimiter, header, columns, encoding."""
    parts = [f"{read.partitions} partitions"] if read.partitions else []
    parts.append(read.format)
    if read.delimiter is not None:
        parts.append(f"delimiter {tables.describe_delimiter(read.delimiter)}")
    if read.header is not None:
        parts.append("header row" if read.header else "no header row")
    if read.columns:
        parts += [f"{k} column {v!r}" for k, v in read.columns.items()]
    parts.append(read.encoding or "binary")
    return ", ".join(parts)


def build_report(
    source: str,
    read: reading.Read,
    cleaned: cleaning.Cleaned,
    lengths: np.ndarray,
    train: pd.DataFrame,
    test: pd.DataFrame,
) -> dict[str, Any]:
    """The data report: where the data came from, what was dropped and why, what is left."""
    pct = np.percentile(lengths, PERCENTILES)
    report = {
        "source": source,
        "sha256": read.sha256,
        "bytes": read.size,
        "compression": read.compression,
        "member": read.member,
        "format": read.format,
        "encoding": read.encoding,
        "delimiter": read.delimiter,
        "header": read.header,
        "sheet": read.sheet,
        "columns": read.columns,
        "rows_read": read.rows_read,
        "dropped": cleaned.dropped,
        "duplicates": cleaned.exact_duplicates,
        "conflicts": {"texts": cleaned.conflicting_texts, "rows_dropped": cleaned.conflicting},
        "rows": len(lengths),
        "splits": {
            name: {
                "rows": len(part),
                **{c: int((part["label"] == c).sum()) for c in ("ham", "spam")},
            }
            for name, part in (("train", train), ("test", test))
        },
        "length_chars": {
            "min": int(lengths.min()),
            **{f"p{q}": round(float(v), 1) for q, v in zip(PERCENTILES, pct, strict=True)},
            "max": int(lengths.max()),
        },
    }
    if read.partitions is not None:
        report["partitions"] = read.partitions
    return report


def log_metrics(report: dict[str, Any], live_dir: Path = LIVE_DIR) -> None:
    """Log the report's numbers as the stage's DVCLive metrics (no plots, no steps) into
    ``live_dir`` (a staging folder: ``io.Outputs.folder``)."""
    numbers = {
        "rows_read": report["rows_read"],
        "rows": report["rows"],
        "duplicates": report["duplicates"],
        "conflicting_texts": report["conflicts"]["texts"],
        **{f"dropped/{k}": v for k, v in report["dropped"].items()},
        **{f"{s}/{k}": v for s, part in report["splits"].items() for k, v in part.items()},
        **{f"length_chars/{k}": v for k, v in report["length_chars"].items()},
    }
    if "feedback" in report:
        fb = report["feedback"]
        numbers.update({f"feedback/{k}": fb[k] for k in FEEDBACK_COUNTS})
        numbers.update({f"feedback/refused/{k}": v for k, v in fb["refused"].items()})
    with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for name, value in numbers.items():
            live.log_metric(name, value, plot=False)


if __name__ == "__main__":
    run(main, "ingest", __doc__)
