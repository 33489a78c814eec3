"""The ingest stage under real `dvc repro`: bad data fails in one line and keeps the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import sh
from ingest_support import messages
from sentinelle.io import read_json, sha256_file
from sentinelle.params import load_yaml

pytestmark = pytest.mark.e2e

KEPT = [
    "data/raw/train.parquet",
    "data/raw/test.parquet",
    "data/report.json",
    "dvclive/ingest/metrics.json",
]


def test_failed_ingest_under_dvc_keeps_previous_outputs(repo: Path) -> None:
    before = {p: sha256_file(repo / p) for p in KEPT}
    (repo / "bad.tsv").write_text("ham\thello\nspma\tworld\n", encoding="utf-8")
    params = repo / "params.yaml"
    params.write_text(
        params.read_text().replace(
            "  source: data/external/sms_spam_collection.tsv", "  source: bad.tsv"
        )
    )
    proc = sh("dvc", "repro", cwd=repo, check=False)
    assert proc.returncode != 0
    errors = [
        ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("ingest: error:")
    ]
    assert errors == [
        "ingest: error: bad.tsv: line 2: 1 row(s) with a label that maps to neither class, "
        "1 distinct: "
        "'spma' (line 2); accepted (case-insensitive): ingest.spam_labels ['spam', '1', 'true'], "
        "ingest.ham_labels ['ham', '0', 'false']; or set ingest.on_unknown_label: drop"
    ]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert {p: sha256_file(repo / p) for p in KEPT} == before
    # Back to the committed params: ingest and later stages are up to date again. Only
    # check_params, which depends on the whole params.yaml, reruns (a persist output keeps
    # it out of DVC's run cache), to the same output.
    sh("git", "checkout", "--", "params.yaml", cwd=repo)
    out = sh("dvc", "repro", cwd=repo).stdout
    ran = [ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage")]
    assert ran == ["check_params"], out
    assert sh("git", "diff", "--exit-code", "dvc.lock", cwd=repo, check=False).returncode == 0


def test_exp_run_sets_the_layout_of_a_headerless_semicolon_export(repo: Path) -> None:
    """`-S` passes `2` as an integer and `';'` (Hydra quoting) as a string: both reach ingest."""
    (repo / "export.csv").write_text(
        "".join(f'{n};{label};"{text}; ok"\r\n' for n, (label, text) in enumerate(messages())),
        encoding="utf-8",
    )
    sh(
        "dvc", "exp", "run", "ingest", "-S", "ingest.source=export.csv",
        "-S", "settings.yaml:ingest.delimiter=';'", "-S", "settings.yaml:ingest.header=false",
        "-S", "settings.yaml:ingest.label_column=2", "-S", "settings.yaml:ingest.text_column=3",
        cwd=repo,
    )  # fmt: skip
    report = read_json(repo / "data/report.json")
    assert (report["delimiter"], report["header"], report["columns"]) == (
        ";",
        False,
        {"text": 3, "label": 2},
    )
    assert report["rows"] == 40 and report["splits"]["test"]["spam"] == 2
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    ingest = next(
        exp["data"]["params"]["params.yaml"]["data"]["ingest"]
        for commit in shown
        for exp in commit.get("experiments") or []
        for exp in exp["revs"]
    )
    assert ingest["source"] == "export.csv"
    settings = load_yaml((repo / "settings.yaml").read_text())["ingest"]
    assert (settings["text_column"], settings["label_column"], settings["header"]) == (3, 2, False)
