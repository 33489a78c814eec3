"""The team workflow against a real local S3 server: push, fresh-clone pull, a teammate's run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import sh
from s3helpers import DVC_OUTPUTS, clone, digests, dvc, keys, use_server

pytestmark = pytest.mark.e2e

# Outputs kept in git (`cache: false`).
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
    dvc("push", cwd=repo)  # no run cache: the committed dvc.lock is enough

    other = clone(repo, tmp_path / "teammate", s3_server, prefix)
    out = dvc("repro", "--pull", cwd=other).stdout
    assert "Running stage" not in out
    assert "Pulling data for stage: 'train'" in out
    assert digests(other, DVC_OUTPUTS) == digests(repo, DVC_OUTPUTS)
    assert sh("git", "status", "--porcelain", cwd=other).stdout == ""


@pytest.mark.slow  # a teammate's clone reruns the pipeline
def test_a_teammates_uncommitted_run_is_rerun_to_the_same_bytes(
    repo: Path, s3_server, tmp_path: Path
) -> None:
    """A runs train.max_ham_fpr=0.002 without committing; B sets the same value and
    `dvc repro --pull` reruns train and evaluate (persist outputs keep every stage out of the
    run cache: `dvc push --run-cache` has nothing to send) and gets A's bytes."""
    prefix = use_server(repo, s3_server)
    params = (repo / "params.yaml").read_text()
    changed = params.replace("  max_ham_fpr: 0.001 ", "  max_ham_fpr: 0.002 ")
    assert changed != params
    (repo / "params.yaml").write_text(changed)
    dvc("repro", cwd=repo)
    dvc("push", "--run-cache", cwd=repo)
    assert not any(k.startswith(f"{prefix}/runs/") for k in keys(s3_server, prefix))
    outputs = [*DVC_OUTPUTS, *GIT_OUTPUTS]
    theirs = digests(repo, outputs)

    other = clone(repo, tmp_path / "teammate", s3_server, prefix)
    (other / "params.yaml").write_text(changed)
    out = dvc("repro", "--pull", cwd=other).stdout
    for stage in ("check_params", "train", "evaluate"):
        assert f"Running stage '{stage}'" in out
    assert "is cached - skipping run" not in out
    assert digests(other, outputs) == theirs
