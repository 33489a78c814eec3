"""Remote faults against a real local S3 server: each must fail loudly and lose nothing."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ROOT, env, sh
from s3helpers import DVC_OUTPUTS, FAIL_FAST, clone, digests, dvc, keys, s3_env, use_server
from sentinelle.errors import UserError
from sentinelle_tools import s3local

pytestmark = pytest.mark.e2e

BULK_FILES = 16  # enough that a push is still running when the server is killed
BULK_SIZE = 8 * 1024 * 1024
BULK = [f"bulk/part-{i:03d}.bin" for i in range(BULK_FILES)]


@pytest.fixture(scope="module")
def private_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, s3local.Server]]:
    """A server of its own (these tests kill it), always stopped at the end."""
    state = tmp_path_factory.mktemp("s3private")
    server = s3local.start(state)
    try:
        yield state, server
    finally:
        s3local.stop(state)


def add_bulk(repo: Path) -> None:
    """A multi-file DVC output (16 x 8 MiB, seeded random bytes), committed."""
    rng = random.Random(5)
    for rel in BULK:
        (repo / rel).parent.mkdir(exist_ok=True)
        (repo / rel).write_bytes(rng.randbytes(BULK_SIZE))
    dvc("add", "bulk", cwd=repo)
    sh("git", "add", "bulk.dvc", ".gitignore", cwd=repo)
    sh("git", "commit", "-q", "-m", "bulk data", cwd=repo)


def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def assert_objects_whole(server: s3local.Server, prefix: str) -> int:
    """Every object under files/ holds exactly the bytes its md5 key names; returns the count."""
    s3 = server.client()
    found = keys(server, prefix)
    for key in found:
        if "/files/md5/" in key:
            body = s3.get_object(Bucket=server.bucket, Key=key)["Body"].read()
            oid = "".join(key.split("/files/md5/")[1].split("/")).removesuffix(".dir")
            assert hashlib.md5(body).hexdigest() == oid, f"{key} holds other bytes than its name"
    return len(found)


# --- credentials, bucket, server down ------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAULTS = {
    # fault: (local config of the remote, the line push/pull must print)
    "missing credentials": (
        {"access_key_id": None, "secret_access_key": None},
        "Unable to locate credentials",
    ),
    "wrong secret": (
        {"secret_access_key": "not-the-secret"},
        "An error occurred (403) when calling the HeadObject operation: Forbidden",
    ),
    "wrong bucket": (
        {"url": "s3://no-such-bucket/dvcstore"},
        "The specified bucket does not exist",
    ),
    "server down": ({"endpointurl": "closed"}, "Could not connect to the endpoint URL"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_remote_fault_fails_push_and_pull_with_a_clear_line(
    fault: str, repo: Path, s3_server, tmp_path: Path
) -> None:
    from dvc.config import Config

    settings, line = FAULTS[fault]
    prefix = use_server(repo, s3_server)
    other = clone(repo, tmp_path / "teammate", s3_server, prefix)
    for where in (repo, other):
        with Config(dvc_dir=str(where / ".dvc")).edit("local") as local:
            remote = local["remote"]["storage"]
            for key, value in settings.items():
                if value is None:
                    remote.pop(key, None)
                else:
                    remote[key] = (
                        f"http://127.0.0.1:{_closed_port()}" if value == "closed" else value
                    )
    push = dvc("push", cwd=repo, check=False, extra_env=FAIL_FAST)
    assert push.returncode != 0
    assert [ln for ln in push.stderr.splitlines() if ln.startswith("ERROR") and line in ln], (
        push.stderr
    )
    pull = dvc("pull", cwd=other, check=False, extra_env=FAIL_FAST)
    assert pull.returncode != 0
    assert [ln for ln in pull.stderr.splitlines() if ln.startswith("ERROR") and line in ln], (
        pull.stderr
    )
    assert not (other / "models/model.skops").exists()
    assert keys(s3_server, prefix) == {}


# --- corruption ----------------------------------------------------------------------


def test_corrupted_object_fails_the_pull_and_is_never_checked_out(
    repo: Path, s3_server, tmp_path: Path
) -> None:
    prefix = use_server(repo, s3_server)
    dvc("push", cwd=repo)
    oid = hashlib.md5((repo / "models/model.skops").read_bytes()).hexdigest()
    key = f"{prefix}/files/md5/{oid[:2]}/{oid[2:]}"
    s3 = s3_server.client()
    body = bytearray(s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte, same size: bit rot in the bucket
    s3.put_object(Bucket=s3_server.bucket, Key=key, Body=bytes(body))

    other = clone(repo, tmp_path / "teammate", s3_server, prefix)
    pull = dvc("pull", cwd=other, check=False)
    assert pull.returncode != 0
    assert "models/model.skops" in pull.stderr and "failed" in pull.stderr.lower(), pull.stderr
    assert not (other / "models/model.skops").exists()
    assert not (other / f".dvc/cache/files/md5/{oid[:2]}/{oid[2:]}").exists()
    intact = [p for p in DVC_OUTPUTS if p != "models/model.skops"]
    assert digests(other, intact) == digests(repo, intact)


# --- the server killed during a push, a pull killed midway ----------------------------


@pytest.mark.slow  # a server killed mid-push
def test_server_killed_mid_push_then_second_push_completes(
    private_server, repo: Path, tmp_path: Path
) -> None:
    state, server = private_server
    prefix = use_server(repo, server)
    add_bulk(repo)
    push = subprocess.Popen(
        ["dvc", "push", "-j", "1"],
        cwd=repo,
        env=s3_env(**FAIL_FAST),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: BULK_SIZE in keys(server, prefix).values())  # the first big file is in
        s3local.stop(state, kill=True)  # SIGKILL: no graceful shutdown of the server
        _, err = push.communicate(timeout=300)
    finally:
        if push.poll() is None:
            push.kill()
            push.wait()
    assert push.returncode != 0, err
    # Depending on where the kill lands: "ERROR: failed to push data to the cloud - N files
    # failed to upload", or "ERROR: failed to transfer '<md5>' - Could not connect to the
    # endpoint URL ..." per file and "ERROR: unexpected error - Could not connect ...".
    errors = [ln for ln in err.splitlines() if ln.startswith("ERROR")]
    assert errors and all(
        "failed to upload" in ln or "Could not connect to the endpoint URL" in ln for ln in errors
    ), err

    restarted = s3local.start(state)
    assert restarted.endpoint == server.endpoint  # same ports: .dvc/config.local still right
    partial = assert_objects_whole(restarted, prefix)
    second = dvc("push", cwd=repo)
    assert "files pushed" in second.stdout
    total = assert_objects_whole(restarted, prefix)
    assert 1 <= partial < total, "the kill did not land in the middle of the push"

    other = clone(repo, tmp_path / "teammate", restarted, prefix)
    dvc("pull", cwd=other)
    assert digests(other, BULK + DVC_OUTPUTS) == digests(repo, BULK + DVC_OUTPUTS)


@pytest.mark.slow  # a pull killed midway
def test_pull_killed_midway_recovers_on_rerun(private_server, repo: Path, tmp_path: Path) -> None:
    state, _ = private_server
    server = s3local.start(state)  # the previous test may have restarted it
    prefix = use_server(repo, server)
    add_bulk(repo)
    dvc("push", cwd=repo)

    other = clone(repo, tmp_path / "teammate", server, prefix)
    cache = other / ".dvc/cache/files/md5"
    pull = subprocess.Popen(
        ["dvc", "pull", "-j", "1"],
        cwd=other,
        env=s3_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: cache.is_dir() and any(p.stat().st_size == BULK_SIZE for p in cache.rglob("*"))
        )
        os.killpg(pull.pid, signal.SIGKILL)
    finally:
        pull.wait(timeout=60)
    got = sum(1 for p in BULK if (other / p).is_file())
    assert got < BULK_FILES, "the pull finished before it was killed"

    dvc("pull", cwd=other)  # no --force needed
    assert digests(other, BULK + DVC_OUTPUTS) == digests(repo, BULK + DVC_OUTPUTS)
    assert dvc("status", "--json", cwd=other).stdout.strip() == "{}"


# --- the server command itself ---------------------------------------------------------


def test_start_fails_with_a_clear_message_when_a_port_is_taken(tmp_path: Path) -> None:
    ports = dict(zip(s3local.PORT_FLAGS, s3local._free_ports(len(s3local.PORT_FLAGS)), strict=True))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["s3.port"]))
        taken.listen()
        with pytest.raises(
            UserError, match=rf"SeaweedFS did not start: weed exited .*port {ports['s3.port']}"
        ):
            s3local.start(tmp_path / "s3", ports=ports, timeout=30)
    assert s3local.read_state(tmp_path / "s3") is None


@pytest.mark.slow  # two server starts
def test_cli_start_status_stop_and_data_survives_a_restart(fresh: Path) -> None:
    e = env() | {"PYTHONPATH": str(ROOT / "src")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["python", "-m", "sentinelle_tools.s3local", *args],
            cwd=fresh,
            env=e,
            text=True,
            capture_output=True,
        )

    try:
        started = cli("start")
        assert started.returncode == 0, started.stderr
        assert "serves s3://sentinelle at http://127.0.0.1:" in started.stderr
        local = (fresh / ".dvc/config.local").read_text()
        server = s3local.read_state(fresh / ".s3")
        assert server is not None
        for value in (server.endpoint, server.access_key, server.secret_key):
            assert value in local
        assert (
            sh("git", "status", "--porcelain", cwd=fresh).stdout == ""
        )  # .s3/ and config.local ignored
        server.client().put_object(Bucket="sentinelle", Key="dvcstore/probe", Body=b"kept")
        assert cli("status").returncode == 0
        assert "stopped" in cli("stop").stderr
        assert cli("status").returncode == 3
        assert cli("start").returncode == 0
        again = s3local.read_state(fresh / ".s3")
        assert again is not None and again.endpoint == server.endpoint
        assert (
            again.client().get_object(Bucket="sentinelle", Key="dvcstore/probe")["Body"].read()
            == b"kept"
        )
    finally:
        cli("stop")
    assert s3local.read_state(fresh / ".s3") is None
