"""The team workflow against a real local S3 server: push, fresh-clone pull, run cache."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, sh
from s3helpers import DVC_OUTPUTS, clone, digests, dvc, keys, s3_env, use_server

pytestmark = pytest.mark.e2e

# Outputs kept in git (`cache: false`), restored from the run cache too.
GIT_OUTPUTS = [
    "dvclive/evaluate/metrics.json",
    "dvclive/evaluate/plots/sklearn/roc.json",
    "dvclive/evaluate/plots/sklearn/confusion_matrix.json",
]


def lock_md5(repo: Path, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(
        o["md5"] for s in lock["stages"].values() for o in s.get("outs", []) if o["path"] == path
    )


def test_push_then_fresh_clone_pull_is_clean_and_byte_identical(
    repo: Path, s3_server, tmp_path: Path
) -> None:
    prefix = use_server(repo, s3_server)
    out = dvc("push", cwd=repo).stdout
    assert "files pushed" in out
    model = lock_md5(repo, "models/model.skops")
    stored = keys(s3_server, prefix)
    assert (
        stored[f"{prefix}/files/md5/{model[:2]}/{model[2:]}"]
        == (repo / "models/model.skops").stat().st_size
    )
    assert "Everything is up to date." in dvc("push", cwd=repo).stdout  # nothing left to send

    other = clone(repo, tmp_path / "teammate", s3_server, prefix)
    assert not (other / "models/model.skops").exists()
    dvc("pull", cwd=other)
    assert dvc("status", "--json", cwd=other).stdout.strip() == "{}"
    assert dvc("status", "--cloud", "--json", cwd=other).stdout.strip() == "{}"
    rerun = dvc("repro", cwd=other).stdout
    assert "Running stage" not in rerun
    assert "Data and pipelines are up to date." in rerun
    assert digests(other, DVC_OUTPUTS) == digests(repo, DVC_OUTPUTS)
    assert sh("git", "status", "--porcelain", cwd=other).stdout == ""


def test_fresh_clone_repro_pull_restores_every_stage_without_running(
    repo: Path, s3_server, tmp_path: Path
) -> None:
    prefix = use_server(repo, s3_server)
    dvc("push", "--run-cache", cwd=repo)
    assert any(k.startswith(f"{prefix}/runs/") for k in keys(s3_server, prefix))

    other = clone(repo, tmp_path / "teammate", s3_server, prefix)
    out = dvc("repro", "--pull", cwd=other).stdout
    assert "Running stage" not in out
    assert "Pulling data for stage: 'train'" in out
    assert digests(other, DVC_OUTPUTS) == digests(repo, DVC_OUTPUTS)
    assert sh("git", "status", "--porcelain", cwd=other).stdout == ""


def test_run_cache_of_a_teammates_uncommitted_run_restores_every_stage(
    repo: Path, s3_server, tmp_path: Path
) -> None:
    """A runs train.max_ham_fpr=0.002 without committing, pushes the run cache and the objects
    of its `cache: false` outputs (sentinelle_tools.runcache); B sets the same value and
    `dvc repro --pull` restores check_params, train and evaluate from the run cache, running
    nothing."""
    prefix = use_server(repo, s3_server)
    params = (repo / "params.yaml").read_text()
    changed = params.replace("  max_ham_fpr: 0.001 ", "  max_ham_fpr: 0.002 ")
    assert changed != params
    (repo / "params.yaml").write_text(changed)
    dvc("repro", cwd=repo)
    dvc("push", "--run-cache", cwd=repo)
    helper = subprocess.run(
        [sys.executable, "-m", "sentinelle_tools.runcache", "push"],
        cwd=repo,
        text=True,
        capture_output=True,
        env=s3_env(PYTHONPATH=str(ROOT / "src")),
    )
    assert helper.returncode == 0, helper.stderr
    assert re.search(r"runcache: \d+ run-cache entries, [1-9]\d* objects pushed", helper.stderr), (
        helper.stderr
    )
    outputs = [*DVC_OUTPUTS, *GIT_OUTPUTS]
    theirs = digests(repo, outputs)

    other = clone(repo, tmp_path / "teammate", s3_server, prefix)
    (other / "params.yaml").write_text(changed)
    out = dvc("repro", "--pull", cwd=other).stdout
    for stage in ("check_params", "train", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out
    assert "Running stage" not in out
    assert digests(other, outputs) == theirs
