"""The pipeline end to end: real `dvc repro` / `dvc exp` in temporary git repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import DVC_OUTPUTS, sh
from sentinelle.io import sha256_file

pytestmark = pytest.mark.e2e

# Outputs that a failed params check must leave untouched (check_params's own
# marker, data/params.ok, is removed by DVC before the check runs, by design).
OUTPUTS = [p for p in DVC_OUTPUTS if p != "data/params.ok"] + [
    "dvclive/train/metrics.json",
    "dvclive/evaluate/metrics.json",
    "dvclive/evaluate/plots/sklearn/roc.json",
    "dvclive/evaluate/plots/sklearn/confusion_matrix.json",
]


def hashes(repo: Path, paths: list[str]) -> dict[str, str]:
    return {p: sha256_file(repo / p) for p in paths}


def test_repro_writes_every_output_with_sane_metrics(reproduced: Path) -> None:
    missing = [p for p in ["data/params.ok", *OUTPUTS] if not (reproduced / p).is_file()]
    assert not missing
    metrics = json.loads((reproduced / "dvclive/evaluate/metrics.json").read_text())
    assert metrics["accuracy"] > 0.95
    assert metrics["tp"] + metrics["fn"] > 80  # the bundled test split holds ~112 spam
    # The named operating points: stricter thresholds flag less ham and catch less spam.
    points = json.loads((reproduced / "models/model.json").read_text())["operating_points"]
    assert set(points) == {"strict", "default", "lenient"}
    assert points["strict"]["threshold"] >= points["default"]["threshold"]
    assert points["default"]["threshold"] >= points["lenient"]["threshold"]
    for name, point in points.items():  # each within its cross-validated ham FPR budget
        assert point["ham_fpr"] <= point["max_ham_fpr"], name
    test = metrics["operating_points"]
    assert test["strict"]["fp"] <= test["default"]["fp"] <= test["lenient"]["fp"]
    assert test["strict"]["recall"] <= test["default"]["recall"] <= test["lenient"]["recall"]
    assert test["default"]["recall"] == metrics["recall"]
    # The test headline travels with the model it describes (the API's model card).
    card = json.loads((reproduced / "models/evaluation.json").read_text())
    meta = json.loads((reproduced / "models/model.json").read_text())
    assert card["model_version"] == meta["model_version"]
    assert card["headline"]["recall"] == metrics["recall"] and card["messages"] == 907
    assert card["operating_points"]["strict"]["fp"] == test["strict"]["fp"]
    report = json.loads((reproduced / "data/report.json").read_text())
    assert report["rows_read"] == 4862
    assert report["splits"]["train"]["rows"] + report["splits"]["test"]["rows"] == report["rows"]


def test_fresh_clone_reproduces_committed_lock_and_metrics(reproduced: Path) -> None:
    """`dvc repro` on a fresh copy gives byte-for-byte the committed dvc.lock and dvclive/."""
    diff = sh(
        "git", "diff", "--stat", "--exit-code", "dvc.lock", "dvclive/", cwd=reproduced, check=False
    )
    assert diff.returncode == 0, f"dvc repro changed committed results:\n{diff.stdout}"
    untracked = sh("git", "status", "--porcelain", "--untracked-files=all", cwd=reproduced).stdout
    assert untracked == "", f"dvc repro left files git does not know about:\n{untracked}"


def test_second_repro_does_nothing(repo: Path) -> None:
    before = hashes(repo, OUTPUTS)
    out = sh("dvc", "repro", cwd=repo).stdout
    assert "Running stage" not in out
    assert "Data and pipelines are up to date." in out
    assert sh("dvc", "status", "--json", cwd=repo).stdout.strip() == "{}"
    assert hashes(repo, OUTPUTS) == before


def test_exp_run_with_a_valid_override_is_listed_in_exp_show(repo: Path) -> None:
    sh("dvc", "exp", "run", "-n", "smaller-c", "-S", "train.C=0.25", cwd=repo)
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    exps = [e for row in rows for e in (row.get("experiments") or [])]
    [exp] = [e for e in exps if e.get("name") == "smaller-c"]
    data = exp["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["C"] == 0.25
    metrics = data["metrics"]["dvclive/evaluate/metrics.json"]["data"]
    assert 0.9 < metrics["accuracy"] <= 1.0


def test_invalid_override_fails_with_one_line_and_keeps_outputs(repo: Path) -> None:
    before = hashes(repo, OUTPUTS)
    proc = sh("dvc", "exp", "run", "-S", "train.C=-1", cwd=repo, check=False)
    assert proc.returncode != 0
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "train.C" in ln]
    assert lines, proc.stdout + proc.stderr
    assert (
        "check_params: error: params.yaml: train.C = -1 is invalid: must be a number > 0" in lines
    )
    sh("git", "checkout", "--", "params.yaml", cwd=repo)
    assert hashes(repo, OUTPUTS) == before


def test_misspelled_key_is_refused_even_though_no_stage_uses_it(repo: Path) -> None:
    before = hashes(repo, OUTPUTS)
    params = repo / "params.yaml"
    params.write_text(
        params.read_text().replace(
            "  classifier: linear_svm", "  classifier: linear_svm\n  clasifier: logreg"
        )
    )
    proc = sh("dvc", "repro", cwd=repo, check=False)
    assert proc.returncode != 0
    assert (
        "check_params: error: params.yaml: unknown key 'train.clasifier' "
        "(did you mean 'train.classifier'?)" in proc.stderr + proc.stdout
    )
    assert hashes(repo, OUTPUTS) == before


def test_appended_key_through_exp_run_is_refused(repo: Path) -> None:
    proc = sh("dvc", "exp", "run", "-S", "+train.clasifier=svm", cwd=repo, check=False)
    assert proc.returncode != 0
    assert "unknown key 'train.clasifier'" in proc.stderr + proc.stdout
