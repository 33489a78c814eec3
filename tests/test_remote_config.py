"""The committed remote configuration: verify on, no credentials tracked, least-privilege IAM."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from helpers import ROOT, project_files

# AWS access key ids (long-term AKIA, temporary ASIA, ...) and secret-key assignments.
KEY_ID = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b")
SECRET = re.compile(
    r"(?i)(?:aws_secret_access_key|secret_access_key|secretkey|secret_key)\s*[=:]\s*[\"']?[A-Za-z0-9/+=_-]{20,}"
)


def test_credential_patterns_match_what_they_should() -> None:
    fake_id = "AKIA" + "Z" * 16  # built at run time so this file holds no key-shaped string
    assert KEY_ID.search(f"key = {fake_id}")
    assert SECRET.search("secret_access_key = " + "x" * 40)
    assert not KEY_ID.search("SNTL" + "Z" * 16)  # the local server's generated ids


def test_no_credential_is_tracked_by_git() -> None:
    hits = []
    for rel in project_files():
        text = (ROOT / rel).read_bytes().decode("utf-8", errors="ignore")
        hits += [
            f"{rel}: {m.group(0)[:24]}..." for rx in (KEY_ID, SECRET) for m in rx.finditer(text)
        ]
    assert hits == []


@pytest.mark.parametrize("path", [".dvc/config.local", ".s3/credentials.json", ".s3/data/x"])
def test_local_credentials_and_server_data_are_git_ignored(path: str) -> None:
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def test_committed_remote_is_s3_with_verify_and_without_secrets() -> None:
    from dvc.config import Config

    config = Config(dvc_dir=str(ROOT / ".dvc")).load_one("repo")  # .dvc/config only, not .local
    assert config["core"]["remote"] == "storage"
    remote = config["remote"]["storage"]
    assert remote["url"] == "s3://sentinelle/dvcstore"
    assert str(remote["verify"]).lower() == "true"
    assert not {"access_key_id", "secret_access_key", "session_token", "endpointurl"} & set(remote)


def policy(name: str) -> dict[str, set[str]]:
    """Resource -> allowed actions of iam/<name>.json (and its ListBucket prefix condition)."""
    doc = json.loads((ROOT / "iam" / f"{name}.json").read_text())
    assert doc["Version"] == "2012-10-17"
    allowed: dict[str, set[str]] = {}
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        assert "*" not in "".join(st["Action"]), f"{name}: wildcard action"
        allowed.setdefault(st["Resource"], set()).update(st["Action"])
        if "s3:ListBucket" in st["Action"]:
            assert st["Condition"]["StringLike"]["s3:prefix"] == ["dvcstore/*", "dvcstore"]
    return allowed


@pytest.mark.parametrize(
    ("name", "object_actions"),
    [
        ("reader", {"s3:GetObject"}),
        ("pusher", {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}),
        ("gc", {"s3:GetObject", "s3:DeleteObject"}),
    ],
)
def test_iam_policies_are_least_privilege_on_the_prefix(
    name: str, object_actions: set[str]
) -> None:
    assert policy(name) == {
        "arn:aws:s3:::sentinelle": {"s3:ListBucket"},
        "arn:aws:s3:::sentinelle/dvcstore/*": object_actions,
    }
