"""Helpers shared by the unit and end-to-end tests (importable as `helpers`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sentinelle import params as schema

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
UCI_FULL = SHARED / "sms_spam_collection.tsv"
KAGGLE_FULL = SHARED / "sms_spam_kaggle.csv"
BIN = Path(sys.executable).parent
SOLVER_CACHE = (
    ROOT / "src/sentinelle/modeling/fast/__pycache__"
)  # numba's compiled solver (dev.py setup)

# Files the pipeline keeps in DVC (not git) on the default data.
DVC_OUTPUTS = [
    "data/params.ok",
    "data/external/sms_spam_collection.tsv",
    "data/raw/train.parquet",
    "data/raw/test.parquet",
    "data/report.json",
    "data/processed/train.parquet",
    "data/processed/test.parquet",
    "models/model.skops",
    "models/model.json",
    "models/evaluation.json",
    "models/reference.json",
    "dvclive/ingest/metrics.json",
    "dvclive/train/params.yaml",
    "dvclive/train/metrics.json",
    "dvclive/evaluate/errors.tsv",
    "dvclive/evaluate/details.json",
]


def env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's venv first on PATH, no analytics."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["DVC_NO_ANALYTICS"] = "1"
    e["GIT_AUTHOR_NAME"] = e["GIT_COMMITTER_NAME"] = "Sentinelle tests"
    e["GIT_AUTHOR_EMAIL"] = e["GIT_COMMITTER_EMAIL"] = "tests@sentinelle.invalid"
    return e


def sh(
    *cmd: str | Path, cwd: Path, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; on unexpected failure show it all."""
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env(), text=True, capture_output=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def project_files() -> list[str]:
    """The files a fresh clone of the working tree would have (tracked + new, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def make_project(dest: Path) -> Path:
    """Copy the working tree into ``dest`` as a new git repository with one commit, with numba's
    compiled SVM solver (as on a machine that has run the pipeline before)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    if SOLVER_CACHE.is_dir():
        shutil.copytree(
            SOLVER_CACHE,
            dest / SOLVER_CACHE.relative_to(ROOT),
            ignore=shutil.ignore_patterns("*.pyc"),
        )
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "initial"],
    ):
        subprocess.run(cmd, cwd=dest, env=env(), check=True, capture_output=True)
    return dest


def write_params(path: Path, data: dict) -> None:
    """Write a mapping of every key (``schema.read``'s form) as the two files: ``path`` and
    settings.yaml beside it, each key in its own file."""
    parts = schema.split(data)
    path.write_text(yaml.safe_dump(parts[schema.DEFAULT_PARAMS], sort_keys=False))
    schema.settings_path(path).write_text(
        yaml.safe_dump(parts[schema.DEFAULT_SETTINGS], sort_keys=False)
    )


def needs_shared(path: Path):
    """Skip a test, with the reason, when a ../shared dataset is absent."""
    return pytest.mark.skipif(
        not path.is_file(),
        reason=f"{path} is absent (the full collection, expected in ../shared/datasets/ "
        "beside the repository)",
    )
