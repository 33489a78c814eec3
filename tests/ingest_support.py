"""Helpers for the ingest tests: a small valid corpus, params, and running the stage."""

from __future__ import annotations

import copy
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

import ingest
from helpers import ROOT, env
from sentinelle import params as params_mod
from sentinelle.io import read_json, sha256_file

OUTPUTS = (
    "data/raw/train.parquet",
    "data/raw/test.parquet",
    "data/report.json",
    "dvclive/ingest/metrics.json",
)

_HAM_WORDS = ["lunch", "dinner", "movie", "party", "meeting", "train", "coffee", "game"]
_PLACES = ["home", "work", "school", "town", "the park", "the gym"]
_SPAM_WORDS = ["prize", "ringtone", "holiday", "voucher", "reward"]


def messages(n_ham: int = 30, n_spam: int = 10) -> list[tuple[str, str]]:
    """Distinct (label, text) pairs without digits (so no two share a canonical form)."""
    ham = [f"see you for {w} at {p} later" for w, p in itertools.product(_HAM_WORDS, _PLACES)]
    spam = [
        f"WIN a free {w} now, claim at {p} today!"
        for w, p in itertools.product(_SPAM_WORDS, _PLACES)
    ]
    assert n_ham <= len(ham) and n_spam <= len(spam)
    return [("ham", t) for t in ham[:n_ham]] + [("spam", t) for t in spam[:n_spam]]


def uci(pairs: list[tuple[str, str]], newline: str = "\n") -> str:
    return "".join(f"{label}\t{text}{newline}" for label, text in pairs)


def default_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def params_dict(source: str | Path, **ingest_overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(default_params())
    data["ingest"]["source"] = str(source)
    data["ingest"].update(ingest_overrides)
    return data


def run_in_process(workdir: Path, source: str | Path, **overrides: Any) -> dict[str, Any]:
    """Run the ingest stage's main() in ``workdir`` (cwd must already be it); return the report."""
    assert Path.cwd() == workdir
    ingest.main(params_mod.parse(params_dict(source, **overrides)))
    return read_json(workdir / "data/report.json")


def run_script(
    workdir: Path, source: str | Path, *args: str, **overrides: Any
) -> subprocess.CompletedProcess[str]:
    """Run `python src/ingest.py --params params.yaml [args]` as a user would, in ``workdir``."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(params_dict(source, **overrides)))
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, str(ROOT / "src/ingest.py"), "--params", "params.yaml", *args],
        cwd=workdir,
        env=e,
        text=True,
        capture_output=True,
        timeout=120,
    )


def output_hashes(workdir: Path) -> dict[str, str]:
    return {p: sha256_file(workdir / p) for p in OUTPUTS}
