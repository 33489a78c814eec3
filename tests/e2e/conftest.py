"""End-to-end fixtures: real `dvc` commands in temporary git repositories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import make_project, sh


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy on which `dvc repro` has run once (shared, do not modify)."""
    repo = make_project(tmp_path_factory.mktemp("reproduced") / "repo")
    sh("dvc", "repro", cwd=repo)
    return repo


@pytest.fixture
def repo(reproduced: Path, tmp_path: Path) -> Path:
    """A private copy of the reproduced project (workspace, git and DVC cache)."""
    dest = tmp_path / "repo"
    shutil.copytree(reproduced, dest, symlinks=True)
    return dest


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A project copy on which nothing has run yet."""
    return make_project(tmp_path / "fresh")


# --- S3 remote (issue 5): one real SeaweedFS server for the session -------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A real local S3 server (SeaweedFS) on free loopback ports, always stopped at the end."""
    from sentinelle_tools import s3local

    state = tmp_path_factory.mktemp("s3server")
    server = s3local.start(state)  # on failure it stops what it started and raises
    try:
        yield server
    finally:
        s3local.stop(state)
