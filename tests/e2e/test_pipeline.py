"""The pipeline end to end: real `dvc repro` / `dvc exp` in temporary git repositories."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from helpers import DVC_OUTPUTS, sh
from sentinelle.io import sha256_file

pytestmark = pytest.mark.e2e

# Outputs that a failed params check must leave untouched (check_params's own
# marker, data/params.ok, is removed by DVC before the check runs, by design).
OUTPUTS = [p for p in DVC_OUTPUTS if p != "data/params.ok"] + [
    "dvclive/evaluate/metrics.json",
    "dvclive/evaluate/plots/sklearn/roc.json",
    "dvclive/evaluate/plots/sklearn/confusion_matrix.json",
]


# The DVC metrics: the headline runs are compared by (with obfuscated.recall).
HEADLINE = ("threshold", "recall", "precision", "ham_fpr", "mcc", "roc_auc")


def hashes(repo: Path, paths: list[str]) -> dict[str, str]:
    return {p: sha256_file(repo / p) for p in paths}


def test_repro_writes_every_output_with_sane_metrics(reproduced: Path) -> None:
    missing = [p for p in ["data/params.ok", *OUTPUTS] if not (reproduced / p).is_file()]
    assert not missing
    metrics = json.loads((reproduced / "dvclive/evaluate/details.json").read_text())
    headline = json.loads((reproduced / "dvclive/evaluate/metrics.json").read_text())
    assert set(headline) == {*HEADLINE, "obfuscated"} and set(headline["obfuscated"]) == {"recall"}
    assert {k: metrics[k] for k in HEADLINE} == {k: headline[k] for k in HEADLINE}
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


@pytest.mark.slow  # a dvc repro or exp run of its own (about 10 s)
def test_exp_run_with_a_valid_override_is_listed_in_exp_show(repo: Path) -> None:
    sh("dvc", "exp", "run", "-n", "smaller-c", "-S", "train.C=0.25", cwd=repo)
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    exps = [e for row in rows for e in (row.get("experiments") or [])]
    [exp] = [e for e in exps if e.get("name") == "smaller-c"]
    data = exp["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["C"] == 0.25
    assert list(data["metrics"]) == ["dvclive/evaluate/metrics.json"]
    metrics = data["metrics"]["dvclive/evaluate/metrics.json"]["data"]
    assert 0.8 < metrics["recall"] <= 1.0 and 0.9 < metrics["roc_auc"] <= 1.0


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


def test_a_misspelled_setting_is_refused_too(repo: Path) -> None:
    before = hashes(repo, OUTPUTS)
    settings = repo / "settings.yaml"
    settings.write_text(settings.read_text().replace("  min_recall:", "  min_recal:"))
    proc = sh("dvc", "repro", cwd=repo, check=False)
    assert proc.returncode != 0
    assert (
        "check_params: error: settings.yaml: unknown key 'gate.min_recal' "
        "(did you mean 'gate.min_recall'?)" in proc.stderr + proc.stdout
    )
    assert hashes(repo, OUTPUTS) == before


def _ran(out: str) -> list[str]:
    return [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]


@pytest.mark.slow  # a dvc repro or exp run of its own (about 10 s)
def test_a_setting_reruns_only_the_stages_whose_outputs_depend_on_it(repo: Path) -> None:
    """Where work runs and the gate change no output: only the check reruns. The number of
    errors listed changes evaluate's output: the stages on data/params.ok rerun (train too, for
    its train.engine setting), and the model comes out the same bytes."""
    settings = repo / "settings.yaml"
    text = settings.read_text()
    settings.write_text(text.replace("min_recall: 0.85", "min_recall: 0.8").replace(
        "scheduler: local", "scheduler: none"))  # fmt: skip
    assert _ran(sh("dvc", "repro", cwd=repo).stdout) == ["check_params"]
    model = (repo / "models/model.skops").read_bytes()
    settings.write_text(text.replace("top_errors: 20", "top_errors: 5"))
    assert _ran(sh("dvc", "repro", cwd=repo).stdout) == [
        "check_params",
        "ingest",
        "train",
        "evaluate",
    ]
    assert (repo / "models/model.skops").read_bytes() == model
    errors = (repo / "dvclive/evaluate/errors.tsv").read_text().splitlines()
    assert len(errors) == 1 + 2 + 5  # header, the 2 false positives, 5 of the 8 missed spam


def _columns(csv_text: str) -> list[str]:
    [header, *_] = list(csv.reader(io.StringIO(csv_text)))
    assert len(header) == len(csv_text.splitlines()[0].split(","))  # no quoted commas
    return header


@pytest.mark.slow  # a dvc repro or exp run of its own (about 10 s)
def test_exp_show_fits(fresh: Path, repo: Path) -> None:
    """A fresh clone's `dvc exp show` fits (<= 45 columns: the headline metrics, params.yaml,
    one code dependency); after one override, --only-changed leaves <= 20."""
    columns = _columns(sh("dvc", "exp", "show", "--csv", cwd=fresh).stdout)
    assert len(columns) <= 45, columns
    assert {"train.C", "recall", "mcc", "src"} <= set(columns)
    assert not any(c.startswith(("monitor.", "gate.", "compute.", "src/")) for c in columns)
    sh("dvc", "exp", "run", "-S", "train.C=0.5", cwd=repo)
    changed = _columns(sh("dvc", "exp", "show", "--only-changed", "--csv", cwd=repo).stdout)
    assert len(changed) <= 20, changed
    assert {"train.C", "recall", "models/model.skops"} <= set(changed)
