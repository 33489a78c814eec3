"""A real Dask cluster for tests: `dask scheduler` and two `dask worker` processes on
127.0.0.1, stopped at the end (the ``cluster`` fixture)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ROOT, env
from test_api import free_port

# As the README starts workers: with glibc's malloc defaults, not Dask's trim threshold
# (sentinelle.compute.GLIBC_MALLOC).
WORKER_ENVIRON = {"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": '{"MALLOC_TRIM_THRESHOLD_": None}'}


def dask_cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "dask"), *args]


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    e.update(WORKER_ENVIRON)
    with log.open("wb") as out:  # the child has its own copy of the file
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=e)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, stopped at the end."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        start(
            dask_cli("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
            tmp_path / "scheduler.log",
        )
    ]
    try:
        for i in range(2):
            procs.append(
                start(
                    dask_cli(
                        "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                        "--nworkers", "1", "--no-dashboard", "--name", f"w{i}",
                    ),
                    tmp_path / f"worker{i}.log",
                )
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, procs
    finally:
        for proc in reversed(procs):
            stop(proc)
