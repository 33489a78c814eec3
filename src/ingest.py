"""Stage `ingest`: read the raw labelled messages, check them, deduplicate, split train/test.

Reads `ingest.source` (a path, an http(s) URL or s3://bucket/key; .gz and .zip
unpacked) in any supported format (UCI, Kaggle spam.csv, CSV with any delimiter, TSV,
JSONL, Parquet, XLSX/XLS/ODS; with or without a header row),
applies the validation policies (`ingest.on_*`), drops exact duplicate texts and
resolves conflicting ones *before* splitting, then makes a stratified split
seeded by `base.seed` that keeps near-duplicates on one side. With `ingest.feedback`,
merges reported verdicts into the training split only (sentinelle.data.feedback).
Writes data/raw/{train,test}.parquet, data/report.json and dvclive/ingest/metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dvclive import Live

from sentinelle import io
from sentinelle.data import cleaning, feedback, formats, sources, tables
from sentinelle.data.split import check_sizes, split
from sentinelle.params import Params
from sentinelle.stage import log, run

RAW = Path("data/raw")
REPORT = Path("data/report.json")
LIVE_DIR = Path("dvclive/ingest")
PERCENTILES = (5, 25, 50, 75, 95, 99)


def main(params: Params) -> None:
    p = params.ingest
    fetched = sources.fetch(p)
    parsed = formats.parse(fetched, p)
    records = parsed.records
    cleaned = cleaning.clean(records, parsed.where, p)
    check_sizes(cleaned.frame, parsed.where, p.test_size, p.min_rows)
    train, test = split(cleaned.frame, p.test_size, params.base.seed)
    merged = None
    if p.feedback is not None:
        train, merged = feedback.merge(train, test, feedback.read(p), p)
        log.info(
            "feedback %s: %d records, %d added to train, %d overridden, refused %s; "
            "training spam share %.2f%% -> %.2f%%",
            p.feedback,
            merged["records"],
            merged["added"],
            merged["overridden"],
            ", ".join(f"{k} {v}" for k, v in merged["refused"].items() if v) or "none",
            100 * merged["train_spam_share"]["before"],
            100 * merged["train_spam_share"]["after"],
        )

    report = build_report(p.source, fetched, parsed, cleaned, train, test)
    if merged is not None:
        report["feedback"] = merged
    io.write_table(RAW / "train.parquet", train)
    io.write_table(RAW / "test.parquet", test)
    io.write_json(REPORT, report)
    log_metrics(report)
    log.info(
        "%s: %d rows read (%s); dropped %s; train %d, test %d",
        parsed.where,
        len(records.rows),
        describe_layout(parsed),
        ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v) or "none",
        len(train),
        len(test),
    )


def describe_layout(parsed: formats.Parsed) -> str:
    """How the file was read, in words: format, delimiter, header, columns, encoding."""
    parts = [parsed.format]
    if parsed.delimiter is not None:
        parts.append(f"delimiter {tables.describe_delimiter(parsed.delimiter)}")
    if parsed.header is not None:
        parts.append("header row" if parsed.header else "no header row")
    if parsed.columns:
        parts += [f"{k} column {v!r}" for k, v in parsed.columns.items()]
    parts.append(parsed.encoding or "binary")
    return ", ".join(parts)


def build_report(
    source: str,
    fetched: sources.Fetched,
    parsed: formats.Parsed,
    cleaned: cleaning.Cleaned,
    train: pd.DataFrame,
    test: pd.DataFrame,
) -> dict[str, Any]:
    """The data report: where the data came from, what was dropped and why, what is left."""
    lengths = cleaned.frame["text"].str.len().to_numpy()
    pct = np.percentile(lengths, PERCENTILES)
    return {
        "source": source,
        "sha256": fetched.sha256,
        "bytes": fetched.size,
        "compression": fetched.compression,
        "member": fetched.member,
        "format": parsed.format,
        "encoding": parsed.encoding,
        "delimiter": parsed.delimiter,
        "header": parsed.header,
        "sheet": parsed.sheet,
        "columns": parsed.columns,
        "rows_read": len(parsed.records.rows),
        "dropped": cleaned.dropped,
        "duplicates": cleaned.exact_duplicates,
        "conflicts": {"texts": cleaned.conflicting_texts, "rows_dropped": cleaned.conflicting},
        "rows": len(cleaned.frame),
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


def log_metrics(report: dict[str, Any]) -> None:
    """Log the report's numbers as the stage's DVCLive metrics (no plots, no steps)."""
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
        numbers.update({f"feedback/{k}": fb[k] for k in ("records", "added", "overridden")})
        numbers.update({f"feedback/refused/{k}": v for k, v in fb["refused"].items()})
    with Live(str(LIVE_DIR), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for name, value in numbers.items():
            live.log_metric(name, value, plot=False)


if __name__ == "__main__":
    run(main, "ingest", __doc__)
