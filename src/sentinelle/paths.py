"""Every path the project reads or writes, relative to the repository root (where DVC runs
the stages and where the `sentinelle` commands are run); dvc.yaml names the same files."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BUNDLED_DATA",
    "DATA_REPORT",
    "DETAILS",
    "DVCLIVE_EVALUATE",
    "DVCLIVE_INGEST",
    "DVCLIVE_TRAIN",
    "ERRORS",
    "EVALUATION",
    "FEEDBACK",
    "METRICS",
    "MODEL",
    "MODEL_METADATA",
    "PARAMS_OK",
    "PLOTS",
    "PROCESSED",
    "RAW",
    "REFERENCE",
    "TRUST",
]

# Data (the stages' outputs, in order)
PARAMS_OK = Path("data/params.ok")
BUNDLED_DATA = Path("data/external/sms_spam_collection.tsv")
RAW = Path("data/raw")  # train.parquet, test.parquet
DATA_REPORT = Path("data/report.json")
PROCESSED = Path("data/processed")  # train.parquet, test.parquet

# The model and what describes it
MODEL = Path("models/model.skops")
MODEL_METADATA = Path("models/model.json")
EVALUATION = Path("models/evaluation.json")
REFERENCE = Path("models/reference.json")

# DVCLive's folders and the evaluate stage's files in them
DVCLIVE_INGEST = Path("dvclive/ingest")
DVCLIVE_TRAIN = Path("dvclive/train")
DVCLIVE_EVALUATE = Path("dvclive/evaluate")
METRICS = DVCLIVE_EVALUATE / "metrics.json"
DETAILS = DVCLIVE_EVALUATE / "details.json"
ERRORS = DVCLIVE_EVALUATE / "errors.tsv"
PLOTS = DVCLIVE_EVALUATE / "plots"

# Reported verdicts and the operator's trust decisions
FEEDBACK = Path("feedback")
TRUST = FEEDBACK / "trust.yaml"
