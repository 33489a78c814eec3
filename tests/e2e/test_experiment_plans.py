"""Experiment plans end to end: real `dvc exp run --queue` / `dvc queue` in temp git repos,
the JSON the VS Code DVC extension reads, and the offline plots report in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import env, sh
from sentinelle.experiments import plots_report

pytestmark = pytest.mark.e2e

RUNNER = "src/experiments.py"
# Fast settings: word features + logistic regression train in a few seconds.
PLAN = """
description: two runs and a grid, fast settings
params: {train.features: word, train.classifier: logreg}
runs:
  - name: c-half
    params: {train.C: 0.5}
  - name: balanced
    params: {train.class_weight: balanced}
grid:
  name: c
  params: {train.C: [4, 16]}
"""
EXPS = ["small-c-half", "small-balanced", "small-c-4", "small-c-16"]


def flatten(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        return {
            k: v for key, val in node.items() for k, v in flatten(val, f"{prefix}{key}.").items()
        }
    return {prefix.rstrip("."): node}


def queue_tasks(repo: Path) -> tuple[list[str], str]:
    out = sh("dvc", "queue", "status", cwd=repo)
    text = out.stdout + out.stderr
    return [ln for ln in text.splitlines() if re.match(r"^[0-9a-f]{7} ", ln)], text


def experiment_names(repo: Path) -> list[str]:
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    return [e["name"] for row in rows for e in (row.get("experiments") or [])]


def assert_no_workers(repo: Path) -> None:
    _, text = queue_tasks(repo)
    assert "Worker status: 0 active, 0 idle" in text, text


@pytest.fixture(scope="module")
def ran(reproduced: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A project copy on which the small plan ran with two workers: (repo, stdout, stderr)."""
    base = tmp_path_factory.mktemp("plan")
    repo = base / "repo"
    shutil.copytree(reproduced, repo, symlinks=True)
    plan = base / "small.yaml"
    plan.write_text(PLAN)
    proc = sh(
        "python", RUNNER, "run", plan, "--jobs", "2", "--timeout", "600", cwd=repo, timeout=1200
    )
    return repo, proc.stdout, proc.stderr


@pytest.mark.slow  # queued dvc runs
def test_plan_runs_to_completion_and_the_table_compares_every_run(
    ran: tuple[Path, str, str],
) -> None:
    repo, stdout, stderr = ran
    assert "small: 4 done, 0 failed, 0 remaining (0 running)" in stderr
    assert "small: 4 of 4 run(s) succeeded" in stderr
    lines = [ln for ln in stdout.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:4] == ["experiment", "train.features", "train.classifier", "train.C"]
    recall, mcc = header.index("recall"), header.index("mcc")
    assert mcc == recall + 1  # the sort metrics first, then the other headline metrics
    others = [m for m in ("threshold", "precision", "ham_fpr", "roc_auc") if m in header]
    assert others and all(header.index(m) > mcc for m in others)
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]
    assert rows[0][0].startswith("**baseline**")
    assert sorted(r[0] for r in rows[1:]) == sorted(EXPS)
    recalls = [float(r[recall]) for r in rows[1:]]
    assert recalls == sorted(recalls, reverse=True)
    assert all(
        0.5 < x <= 1 and 0.5 < float(r[mcc]) <= 1 for x, r in zip(recalls, rows[1:], strict=True)
    )
    # The params of each row are the plan's, as DVC recorded them.
    by_name = {r[0]: r for r in rows}
    assert by_name["small-c-16"][1:4] == ["word", "logreg", "16"]
    assert by_name["small-balanced"][1:4] == ["word", "logreg", "1.0"]
    report = (repo / "experiments/results/small.md").read_text()
    assert all(ln in report for ln in lines)
    assert_no_workers(repo)
    assert sh("git", "status", "--porcelain", cwd=repo).stdout == ""  # results are git-ignored


@pytest.mark.slow  # queued dvc runs
def test_compare_rebuilds_the_table_with_chosen_columns_and_sort(
    ran: tuple[Path, str, str],
) -> None:
    repo, _, _ = ran
    proc = sh(
        "python",
        RUNNER,
        "compare",
        str(repo.parent / "small.yaml"),
        "--columns",
        "train.C,mcc,ham_fpr",
        "--sort=-ham_fpr,mcc",
        cwd=repo,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| experiment | train.C | ham_fpr | mcc |"
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]
    assert sorted(r[0] for r in rows[1:]) == sorted(EXPS)
    keys = [(float(r[2]), -float(r[3])) for r in rows[1:]]
    assert keys == sorted(keys)  # least ham flagged first, then highest MCC


def declared_plot_ids(dvc_yaml: dict) -> list[str]:
    """Plot ids as DVC reports them: stage-level plot files, and top-level plot names."""
    ids = [
        next(iter(p)) if isinstance(p, dict) else p
        for stage in dvc_yaml["stages"].values()
        for p in stage.get("plots", [])
    ]
    return ids + [next(iter(p)) if isinstance(p, dict) else p for p in dvc_yaml.get("plots", [])]


@pytest.mark.slow  # queued dvc runs
def test_vscode_views_get_every_param_metric_and_plot_for_each_experiment(
    ran: tuple[Path, str, str],
) -> None:
    """The DVC extension reads `dvc exp show --json` and `dvc plots diff --json`."""
    repo, _, _ = ran
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    params_keys = set(flatten(yaml.safe_load((repo / "params.yaml").read_text())))
    metric_files = [
        next(iter(m)) if isinstance(m, dict) else m
        for stage in dvc_yaml["stages"].values()
        for m in stage.get("metrics", [])
    ]
    metric_keys = {f: set(json.loads((repo / f).read_text())) for f in metric_files}
    assert metric_keys and all(metric_keys.values())

    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    exps = {e["name"]: e["revs"][0]["data"] for row in rows for e in (row.get("experiments") or [])}
    assert set(EXPS) <= set(exps)
    for name in EXPS:
        data = exps[name]
        assert set(flatten(data["params"]["params.yaml"]["data"])) == params_keys, name
        for f, keys in metric_keys.items():
            assert set(data["metrics"][f]["data"]) == keys, (name, f)
    assert exps["small-c-4"]["params"]["params.yaml"]["data"]["train"]["C"] == 4

    plot_ids = declared_plot_ids(dvc_yaml)
    revs = ["small-c-half", "small-c-16"]
    plots = json.loads(sh("dvc", "plots", "diff", "--json", *revs, cwd=repo).stdout)
    assert "errors" not in plots, plots.get("errors")
    assert sorted(plots["data"]) == sorted(plot_ids)
    for plot_id in plot_ids:
        if plot_id.endswith(".png"):  # an image: one entry per experiment
            entries = plots["data"][plot_id]
            assert sorted(e["revisions"][0] for e in entries) == sorted(revs), plot_id
            assert {e["type"] for e in entries} == {"image"}
            continue
        [entry] = plots["data"][plot_id]
        assert entry["type"] == "vega"
        assert sorted(entry["revisions"]) == sorted(revs), plot_id
        values = entry["content"]["data"]["values"]
        assert {v["rev"] for v in values} == set(revs), plot_id


@pytest.mark.slow  # queued dvc runs
def test_plots_diff_report_renders_offline_in_headless_chromium(ran: tuple[Path, str, str]) -> None:
    repo, _, _ = ran
    if not plots_report.chromium():
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    proc = sh(
        "python",
        RUNNER,
        "report",
        str(repo.parent / "small.yaml"),
        "--only",
        "c-*",
        cwd=repo,
        timeout=600,
    )
    page = repo / "experiments/results/small-plots/index.html"
    html = page.read_text()
    assert "cdn.jsdelivr.net" not in html  # the page works without internet
    assert "<title>Sentinelle: small vs baseline" in html  # the repository's template, retitled
    n_plots = sum(
        not p.endswith(".png")
        for p in declared_plot_ids(yaml.safe_load((repo / "dvc.yaml").read_text()))
    )
    assert f"chromium: {n_plots} of {n_plots} plots rendered" in proc.stderr
    result = plots_report.check(page, repo.parent / "shot.png")
    assert result.plots == result.rendered == n_plots
    assert result.ink > 0.05  # axes, curves and the confusion heat maps, not a blank page


def test_misspelled_key_refuses_the_plan_before_anything_is_queued(repo: Path) -> None:
    plan = repo.parent / "typo.yaml"
    plan.write_text(
        "runs:\n  - {name: ok, params: {train.C: 2}}\n"
        "  - {name: typo, params: {train.clasifier: logreg}}\n"
    )
    proc = sh("python", RUNNER, "run", plan, "--jobs", "2", cwd=repo, check=False, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"experiments: error: {plan}: run 'typo': train.clasifier = 'logreg': unknown key "
        "'train.clasifier' (did you mean 'train.classifier'?); allowed: engine, features, "
        "word_ngrams, char_ngrams, min_df, max_features, sublinear_tf, classifier, C, alpha, "
        "class_weight, n_estimators, max_depth, n_jobs, max_ham_fpr, operating_points, cv_folds"
    ]
    assert queue_tasks(repo)[0] == []
    assert experiment_names(repo) == []


def test_untracked_files_refuse_the_plan_before_anything_is_queued(repo: Path) -> None:
    (repo / "src" / "new_feature.py").write_text("X = 1\n")
    plan = repo / "experiments" / "ok.yaml"  # a new plan is fine: the runs never read it
    plan.write_text("runs:\n  - {name: ok, params: {train.C: 2}}\n")
    proc = sh("python", RUNNER, "run", plan, cwd=repo, check=False, timeout=120)
    assert proc.returncode == 2
    assert (
        "refusing to queue: 1 uncommitted change(s) or untracked file(s): ?? src/new_feature.py"
        in proc.stderr
    )
    assert "treeverse/dvc#8854" in proc.stderr
    assert queue_tasks(repo)[0] == []


@pytest.mark.slow  # queued dvc runs
def test_a_failing_run_is_reported_with_its_error_and_log(repo: Path) -> None:
    plan = repo.parent / "broken.yaml"
    # Valid for the schema (a string), but not a dataset: the ingest stage fails.
    plan.write_text(
        "params: {train.features: word, train.classifier: logreg}\n"
        "runs:\n  - {name: bad-source, params: {ingest.source: params.yaml}}\n"
    )
    proc = sh("python", RUNNER, "run", plan, "--timeout", "300", cwd=repo, check=False, timeout=900)
    assert proc.returncode == 1, proc.stderr
    error = "ingest: error: params.yaml: cannot tell the format from the name or the first line"
    # Reported when it fails, and again in the summary at the end.
    line, *_ = [
        ln
        for ln in proc.stderr.splitlines()
        if ln.startswith("experiments: broken-bad-source failed: ")
    ]
    assert error in line
    log = Path(re.search(r"\(log: (\S+)\)$", line).group(1))
    assert log.is_file() and error in log.read_text()
    assert "broken: 0 done, 1 failed, 0 remaining" in proc.stderr
    assert "| broken-bad-source (failed) |" in proc.stdout
    assert_no_workers(repo)


@pytest.mark.slow  # queued dvc runs
def test_ctrl_c_removes_queued_runs_and_stops_the_workers(repo: Path) -> None:
    plan = repo.parent / "long.yaml"
    plan.write_text(
        "params: {train.features: word, train.classifier: logreg}\n"
        "grid: {name: c, params: {train.C: [1, 2, 3]}}\n"
    )
    err = repo.parent / "stderr.log"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            ["python", RUNNER, "run", str(plan), "--jobs", "1"],
            cwd=repo,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            # As in a terminal: a background pytest would pass SIGINT on as ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 300
            while (
                "(1 running)" not in err.read_text()
                and proc.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.5)
            assert "(1 running)" in err.read_text(), err.read_text()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=180) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
    text = err.read_text()
    assert re.search(
        r"cleaning up [23] unfinished run\(s\): (long-c-1, )?long-c-2, long-c-3", text
    ), text
    assert "interrupted; queued runs removed and workers stopped" in text
    tasks, _ = queue_tasks(repo)
    assert not [t for t in tasks if t.endswith(("Queued", "Running"))], tasks
    assert_no_workers(repo)


def test_a_fresh_clone_without_its_outputs_is_refused_before_queuing(fresh: Path) -> None:
    """Queued runs restore stages from the committed outputs: a clone must `dvc pull`/`dvc repro`
    first."""
    plan = fresh.parent / "one.yaml"
    plan.write_text("runs:\n  - {name: c2, params: {train.C: 2}}\n")
    proc = sh("python", RUNNER, "run", plan, cwd=fresh, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert (
        "refusing to queue: the committed pipeline outputs are not in this workspace ("
        in proc.stderr
    )
    assert "run `dvc pull` (or `dvc repro`) first" in proc.stderr
    assert sh("dvc", "queue", "status", cwd=fresh).stdout.count("Queued") == 0
