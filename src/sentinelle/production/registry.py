"""Fetch a registered model version or stage for serving.

Versions and stages are GTO git tags (``gto register spam-classifier`` makes
``spam-classifier@v0.0.1``, ``gto assign spam-classifier --stage prod`` makes
``spam-classifier#prod#1``); the model files themselves live in the DVC remote.
``fetch`` resolves a version or stage to its commit the way ``dvc artifacts get``
does, then downloads the artifact (``models/model.skops``) *and* its metadata
sidecar (``models/model.json``: threshold, version, hash) from the DVC remote,
and checks the model's SHA-256 against the metadata before anything is served.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sentinelle import io
from sentinelle.errors import UserError
from sentinelle.modeling import metadata as model_metadata

log = logging.getLogger("sentinelle")

ARTIFACT = "spam-classifier"


def resolve(
    repo_url: str, name: str = ARTIFACT, version: str | None = None, stage: str | None = None
) -> tuple[str, str]:
    """``(commit, artifact path)`` of a version, a stage, or (neither) the latest version."""
    # DVC only here: `sentinelle score` and `serve` import this module and don't need it.
    from dvc.exceptions import ArtifactNotFoundError
    from dvc.repo import Repo

    if version and stage:
        raise UserError("give a version or a stage, not both")
    try:
        with Repo.open(url=repo_url, subrepos=False, uninitialized=True) as repo:
            rev = repo.artifacts.get_rev(name, version=version, stage=stage)
        with Repo.open(url=repo_url, rev=rev, subrepos=False) as repo:
            path = repo.artifacts.get_path(name)
    except ArtifactNotFoundError:
        what = f"version {version}" if version else f"stage {stage}" if stage else "any version"
        raise UserError(
            f"{repo_url}: artifact {name!r} has no {what} registered (see `gto show {name}`)"
        ) from None
    return rev, Path(path).as_posix()


def fetch(
    repo_url: str,
    out_dir: Path,
    *,
    name: str = ARTIFACT,
    version: str | None = None,
    stage: str | None = None,
) -> tuple[Path, Path]:
    """Download a model and its metadata into ``out_dir``; return their paths."""
    from dvc.api import DVCFileSystem

    rev, path = resolve(repo_url, name, version, stage)
    sidecar = str(Path(path).with_suffix(".json").as_posix())
    out_dir = Path(out_dir)
    targets = {path: out_dir / Path(path).name, sidecar: out_dir / Path(sidecar).name}
    fs = DVCFileSystem(repo_url, rev=rev)
    for src, dest in targets.items():
        with io.atomic_path(dest) as tmp:
            fs.get_file(src, str(tmp))
    model, metadata = targets[path], targets[sidecar]
    expected = model_metadata.read(metadata)["model_sha256"]
    if io.sha256_file(model) != expected:
        raise UserError(
            f"{model}: SHA-256 does not match {metadata}'s model_sha256 {expected[:12]}…"
        )
    log.info(
        "fetched %s (%s, commit %s) into %s", name, version or stage or "latest", rev[:8], out_dir
    )
    return model, metadata
