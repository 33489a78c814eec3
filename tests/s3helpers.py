"""Helpers for the S3 tests: hermetic `dvc` runs against the local SeaweedFS server."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path

from helpers import DVC_OUTPUTS, env  # noqa: F401  (re-exported for the S3 tests)
from sentinelle_tools import s3local
from sentinelle_tools.s3local import Server


def s3_env(**extra: str) -> dict[str, str]:
    """helpers.env() without any AWS settings of the machine (no profile, no env keys, no IMDS)."""
    e = {k: v for k, v in env().items() if not k.startswith("AWS_")}
    e |= {
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/aws/config",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return e | extra


# For fault tests: botocore gives up at once (s3fs still retries 5 times, ~2 s per file),
# so a dead server fails a push in seconds instead of minutes of back-off.
FAIL_FAST = {"AWS_MAX_ATTEMPTS": "1"}


def dvc(
    *args: str,
    cwd: Path,
    check: bool = True,
    timeout: float = 300,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `dvc ARGS` hermetically; on unexpected failure show its output."""
    proc = subprocess.run(
        ["dvc", *args],
        cwd=cwd,
        env=s3_env(**(extra_env or {})),
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dvc {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def use_server(repo: Path, server: Server, prefix: str | None = None) -> str:
    """Point ``repo``'s remote at ``server`` (.dvc/config.local); a private prefix keeps tests
    apart."""
    from dvc.config import Config

    s3local.configure_remote(repo, server)
    prefix = prefix or f"t-{uuid.uuid4().hex[:8]}"
    with Config(dvc_dir=str(repo / ".dvc")).edit("local") as local:  # = dvc remote modify --local
        local["remote"]["storage"]["url"] = f"s3://{server.bucket}/{prefix}"
    return prefix


def clone(src: Path, dest: Path, server: Server, prefix: str) -> Path:
    """A fresh `git clone` of ``src`` using the same remote (as a teammate would set it up)."""
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True, env=env())
    use_server(dest, server, prefix)
    return dest


def keys(server: Server, prefix: str) -> dict[str, int]:
    """Object key -> size under ``prefix`` in the bucket."""
    s3 = server.client()
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=server.bucket, Prefix=prefix + "/"
    ):
        out |= {o["Key"]: o["Size"] for o in page.get("Contents", [])}
    return out


def md5_file(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def digests(repo: Path, paths: list[str]) -> dict[str, str]:
    return {p: md5_file(repo / p) for p in paths}
