"""Helpers for the ingest tests: a small valid corpus, params, and running the stage."""

from __future__ import annotations

import copy
import itertools
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import ingest
from helpers import ROOT, env, write_params
from sentinelle import params as params_mod
from sentinelle.errors import UserError
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
    return params_mod.read(ROOT / "params.yaml")


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
    write_params(workdir / "params.yaml", params_dict(source, **overrides))
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


@dataclass
class Case:
    """One file of a malformed-input corpus, and what ingesting it must give."""

    id: str
    name: str  # file name in the corpus
    content: bytes | None  # None: do not create the file
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # expected message fragment (the whole line must hold it)
    expect: dict[str, Any] = field(default_factory=dict)  # report key path -> value
    check: Callable[[Path], None] | None = None  # extra check on the written outputs
    warning: str | None = None  # a fragment of the one column warning the run must log


def dig(report: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        report = report[key]
    return report


def previous_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working directory, holding the outputs of a good ingest run."""
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.tsv"
    good.write_text(uci(messages(40, 12)), encoding="utf-8")
    run_in_process(tmp_path, good)
    return tmp_path


def check_case(case: Case, workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Ingest ``case``'s file: the expected counts, or the expected one-line error with the
    previous outputs left byte-identical."""
    path = workdir / "corpus" / case.name
    if case.content is not None:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(case.content)
    source = f"corpus/{case.name}"
    before = output_hashes(workdir)
    caplog.clear()
    if case.error is not None:
        with pytest.raises(UserError) as info:
            run_in_process(workdir, source, **case.params)
        message = str(info.value)
        assert "\n" not in message
        assert case.error in message
        assert message.startswith(("corpus/", "ingest."))
        assert output_hashes(workdir) == before
        return
    report = run_in_process(workdir, source, **case.params)
    assert report["source"] == source
    for key, value in case.expect.items():
        assert dig(report, key) == value, key
    splits = report["splits"]
    assert splits["train"]["rows"] + splits["test"]["rows"] == report["rows"]
    assert report["rows"] + sum(report["dropped"].values()) == report["rows_read"]
    if case.check:
        case.check(workdir)
    if report["encoding"] in ("cp1252", "latin-1") and "encoding" not in case.params:
        assert f"decoded as {report['encoding']}" in caplog.text
    warned = [r.getMessage() for r in caplog.records if "using" in r.getMessage()]
    assert warned == ([] if case.warning is None else [warned[0]]), warned
    if case.warning is not None:
        assert case.warning in warned[0]
