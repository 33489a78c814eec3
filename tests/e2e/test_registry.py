"""The model registry: GTO versions and stages on the DVC artifact, fetched from a DVC remote."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from cli_helper import sentinelle
from helpers import sh
from sentinelle.io import sha256_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # slow: an S3 server, a repro, GTO tags

NAME = "spam-classifier"


@pytest.fixture
def remote(s3_server) -> dict:
    """The DVC remote the registry pushes to and serving fetches from: the project's local
    S3 server (a real SeaweedFS), in a private prefix. Every option is applied with
    `dvc remote modify` (credentials with --local, so they never reach a commit)."""
    return {
        "url": f"s3://{s3_server.bucket}/registry-{uuid.uuid4().hex[:8]}",
        "options": {"endpointurl": s3_server.endpoint},
        "local_options": {
            "access_key_id": s3_server.access_key,
            "secret_access_key": s3_server.secret_key,
        },
    }


@pytest.fixture
def registry(repo: Path, remote: dict) -> dict[str, str]:
    """Two registered versions pushed to the remote: v1.0.0 (the default model) in prod,
    v1.1.0 (logistic regression on words) in staging; then the local DVC cache is removed
    so that every fetch has to come from the remote. Returns each version's model SHA-256."""
    sh("dvc", "remote", "add", "-d", "store", remote["url"], cwd=repo)
    for key, value in remote["options"].items():
        sh("dvc", "remote", "modify", "store", key, "--", value, cwd=repo)
    for key, value in remote["local_options"].items():
        sh("dvc", "remote", "modify", "--local", "store", key, "--", value, cwd=repo)
    sh("git", "commit", "-qam", "DVC remote", cwd=repo)
    sh("dvc", "push", cwd=repo)
    shas = {"v1.0.0": sha256_file(repo / "models/model.skops")}
    sh("gto", "register", NAME, "--version", "v1.0.0", cwd=repo)
    sh("gto", "assign", NAME, "--version", "v1.0.0", "--stage", "prod", cwd=repo)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(classifier="logreg", features="word")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", cwd=repo)
    sh("git", "commit", "-qam", "logistic regression", cwd=repo)
    sh("dvc", "push", cwd=repo)
    shas["v1.1.0"] = sha256_file(repo / "models/model.skops")
    assert shas["v1.1.0"] != shas["v1.0.0"]
    sh("gto", "register", NAME, "--version", "v1.1.0", cwd=repo)
    sh("gto", "assign", NAME, "--version", "v1.1.0", "--stage", "staging", cwd=repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    return shas


def test_versions_and_stages_are_fetched_from_the_remote_for_serving(
    repo: Path, registry: dict[str, str], tmp_path: Path
) -> None:
    show = json.dumps(json.loads(sh("gto", "show", NAME, "--json", cwd=repo).stdout))
    assert all(v in show for v in ("v1.0.0", "v1.1.0", "prod", "staging"))

    for which, value, version in [
        ("--stage", "prod", "v1.0.0"),
        ("--stage", "staging", "v1.1.0"),
        ("--version", "v1.0.0", "v1.0.0"),
    ]:
        out = tmp_path / f"{value}"
        sentinelle("fetch", "--repo", repo, which, value, "-o", out, cwd=tmp_path)
        assert sha256_file(out / "model.skops") == registry[version]
        meta = json.loads((out / "model.json").read_text())
        assert meta["model_sha256"] == registry[version]

    # The fetched files serve as they are: the safe loader accepts them.
    from sentinelle.serving.scorer import Scorer

    scorer = Scorer.load(tmp_path / "prod" / "model.skops")
    (spam, _), (ham, _) = scorer.predict(
        ["WINNER!! Claim your FREE £1000 prize, call 09061701461 now", "see you at lunch"]
    )
    assert spam > scorer.threshold > ham

    # DVC's own command fetches the same artifact file.
    sh(
        "dvc",
        "artifacts",
        "get",
        repo,
        NAME,
        "--stage",
        "prod",
        "-o",
        tmp_path / "dvc-get.skops",
        cwd=tmp_path,
    )
    assert sha256_file(tmp_path / "dvc-get.skops") == registry["v1.0.0"]

    # Stage names are limited to those in .gto; a stage with no version is a one-line error.
    proc = sentinelle(
        "fetch", "--repo", repo, "--stage", "dev", "-o", tmp_path / "x", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"sentinelle fetch: error: {repo}: artifact 'spam-classifier' has no stage dev "
        "registered (see `gto show spam-classifier`)"
    )
    bad = sh("gto", "assign", NAME, "--version", "v1.0.0", "--stage", "qa", cwd=repo, check=False)
    assert bad.returncode != 0 and "Allowed stages are: '['dev', 'staging', 'prod']'" in bad.stderr
