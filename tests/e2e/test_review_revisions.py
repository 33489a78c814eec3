"""`sentinelle report` and `sentinelle gate` on a real repository with two models: the default
(committed on main) and a worse one (`train.C=0.01`, `dvc repro`, committed on a branch)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cli_helper import sentinelle
from helpers import sh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_models(reproduced: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main: the default model; branch `worse`: train.C=0.01 (reproduced and committed);
    the workspace is left on `worse`."""
    repo = tmp_path_factory.mktemp("review") / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == ""
    sh("git", "checkout", "-q", "-b", "worse", cwd=repo)
    params = repo / "params.yaml"
    text = params.read_text()
    assert "\n  C: 1.0 " in text
    params.write_text(text.replace("\n  C: 1.0 ", "\n  C: 0.01"))
    sh("dvc", "repro", cwd=repo)
    sh("git", "commit", "-q", "-am", "train.C=0.01", cwd=repo)
    return repo


def ink(png: Path) -> float:
    with Image.open(png) as img:
        hist = img.convert("L").histogram()
        return 1 - sum(hist[245:]) / (img.width * img.height)


@pytest.mark.slow  # a dvc repro or exp run of its own (about 10 s)
def test_report_of_a_worse_model(two_models: Path, tmp_path: Path) -> None:
    out = tmp_path / "pr" / "report.md"
    proc = sentinelle("report", "--baseline", "main", "-o", out, cwd=two_models)
    assert proc.stdout.strip() == str(out)
    text = out.read_text()
    # The numbers are DVC's own: `dvc metrics diff` and `dvc params diff` agree.
    diff = json.loads(
        sh("dvc", "metrics", "diff", "main", "--all", "--json", cwd=two_models).stdout
    )
    mcc = diff["dvclive/evaluate/metrics.json"]["mcc"]
    assert set(diff) == {"dvclive/evaluate/metrics.json"}  # the headline only
    # Every figure (details.json, a DVC output), where both revisions have it: both ran here.
    details = json.loads(
        sh("dvc", "metrics", "diff", "main", "--all", "--json", "--targets",
           "dvclive/evaluate/details.json", cwd=two_models).stdout
    )  # fmt: skip
    fp = details["dvclive/evaluate/details.json"]["fp"]
    assert f"| `mcc` | {mcc['old']:.4f} | {mcc['new']:.4f} | {mcc['diff']:+.4f} ▼ worse |" in text
    assert f"| `fp` | {fp['old']} | {fp['new']} | {fp['new'] - fp['old']:+} ▲ worse |" in text
    params = json.loads(sh("dvc", "params", "diff", "main", "--json", cwd=two_models).stdout)
    assert params["params.yaml"] == {"train.C": {"old": 1.0, "new": 0.01, "diff": -0.99}}
    assert "| `train.C` | `1.0` | `0.01` |" in text
    assert re.search(r"^\*\*Gate: FAIL\*\* · spam recall \*\*0\.\d{4}\*\* ", text, re.M)
    assert "| `gate.max_ham_fpr` (ham FPR) |" in text and "| **FAIL** |" in text
    # Both revisions' plots, side by side, as non-blank PNG files next to the report.
    pngs = re.findall(r"\]\((report-plots/[\w-]+\.png)\)", text)
    assert len(pngs) == 10
    for rel in pngs:
        assert 0.02 < ink(out.parent / rel) < 0.6, rel
    for name in ("roc", "precision_recall", "det", "threshold", "confusion"):
        base, new = (out.parent / f"report-plots/{name}-{s}.png" for s in ("baseline", "target"))
        assert base.read_bytes() != new.read_bytes(), name
    # Reproducible: the same inputs give the same bytes.
    again = tmp_path / "again" / "report.md"
    sentinelle("report", "--baseline", "main", "-o", again, cwd=two_models)
    assert again.read_text().replace("again", "pr") == text.replace("again", "pr")
    assert (again.parent / pngs[0]).read_bytes() == (out.parent / pngs[0]).read_bytes()


def test_gate_fails_the_worse_model_and_passes_the_better(two_models: Path) -> None:
    worse = sentinelle("gate", "--baseline", "main", cwd=two_models, check=False)
    assert worse.returncode == 1, worse.stderr
    lines = worse.stdout.splitlines()
    assert len(lines) == 7
    assert lines[1].startswith("FAIL  gate.max_ham_fpr     ham FPR 0.0063 (limit <= 0.005)")
    assert lines[-1].startswith("FAIL: 1 of 6 rules failed (gate.max_ham_fpr)")
    better = sentinelle(
        "gate", "--baseline", "worse", "--target", "main", cwd=two_models, check=False
    )
    assert better.returncode == 0, better.stdout
    assert better.stdout.splitlines()[-1] == "PASS: 5 of 6 rules passed, 1 not checked"


@pytest.mark.slow  # a throughput measurement
def test_gate_measures_throughput_when_asked(two_models: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(two_models / "params.yaml", params)
    text = (two_models / "settings.yaml").read_text()
    (tmp_path / "settings.yaml").write_text(
        text.replace("min_throughput: null", "min_throughput: 1")
    )
    proc = sentinelle("gate", "--params", params, cwd=two_models, check=False)
    line = next(x for x in proc.stdout.splitlines() if "gate.min_throughput" in x)
    assert re.match(r"PASS  gate.min_throughput  messages/s \d+\.\d{4} \(limit >= 1\)", line)
    proc = sentinelle("gate", "--params", params, "--target", "main", cwd=two_models, check=False)
    assert proc.returncode == 2
    assert "gate.min_throughput is measured with the workspace's model, not 'main'" in proc.stderr


@pytest.mark.slow  # a fresh clone and a second report
def test_report_from_a_fresh_clone_needs_only_git(two_models: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", "--branch", "worse", two_models, clone, cwd=tmp_path)
    assert not (clone / "models").exists() and not (clone / "data").exists()
    out = clone / "report.md"
    sentinelle("report", "--baseline", "origin/main", "--target", "HEAD", "-o", out, cwd=clone)
    text = out.read_text()
    assert text.startswith("# Sentinelle model report: HEAD (")
    assert "## Missing" not in text  # everything it needs is committed
    assert "Not at hand for origin/main" in text  # details.json: a DVC output, not pulled
    gate = sentinelle("gate", "--baseline", "origin/main", cwd=clone, check=False)
    assert gate.returncode == 1


@pytest.mark.slow  # a dvc repro or exp run of its own (about 10 s)
def test_bad_revisions_and_missing_metrics_are_one_line_exit_2(two_models: Path) -> None:
    proc = sentinelle("gate", "--baseline", "nope", cwd=two_models, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"sentinelle gate: error: 'nope' is not a git revision of {two_models.resolve()} "
        "(a branch, tag or commit such as main or origin/main; or 'workspace')"
    ]
    sh("git", "checkout", "-q", "-b", "no-metrics", "main", cwd=two_models)
    try:
        sh("git", "rm", "-q", "dvclive/evaluate/metrics.json", cwd=two_models)
        sh("git", "commit", "-q", "-m", "no metrics", cwd=two_models)
        for command in ("gate", "report"):
            proc = sentinelle(
                command,
                "--baseline",
                "no-metrics",
                "--target",
                "worse",
                cwd=two_models,
                check=False,
            )
            assert proc.returncode == 2, proc.stdout
            [line] = proc.stderr.strip().splitlines()
            assert re.fullmatch(
                rf"sentinelle {command}: error: no-metrics \([0-9a-f]{{7}}\): no "
                r"dvclive/evaluate/metrics.json \(git show [0-9a-f]{7}:dvclive/evaluate/"
                r"metrics.json found nothing\): run `dvc repro` \(and commit dvclive/\) or "
                "choose another revision",
                line,
            ), line
    finally:
        sh("git", "checkout", "-q", "-f", "worse", cwd=two_models)
        sh("dvc", "checkout", "-q", cwd=two_models)
