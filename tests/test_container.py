"""The service's container image, built and run for real (`python3 dev.py image`'s code).

Builds the Dockerfile with whichever engine is here (buildah on a machine without a Docker
daemon: `buildah bud --isolation chroot`, on a debootstrapped Python 3.11 base when the default
base cannot be pulled) with a tiny model in the build context, then runs the service inside
the image and checks /readyz, one /predict and that it runs as a non-root user.

`buildah run --isolation chroot` shares the host's network, so the server is started on
127.0.0.1 and a free port instead of the image's 0.0.0.0:8000 (docker/podman publish the
image's port on 127.0.0.1 only).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

import tiny_model
from helpers import ROOT, env, project_files
from sentinelle_tools import image
from test_api import free_port, wait_for

pytestmark = [pytest.mark.container, pytest.mark.slow]  # slow: an image build
TAG = "localhost/sentinelle:test"

try:
    ENGINE: str | None = image.engine()
except image.ImageError as exc:
    ENGINE, WHY = None, str(exc)


def run(*cmd: str, timeout: float = 120) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if ENGINE is None:
        pytest.skip(f"no container engine: {WHY}")
    context = tmp_path_factory.mktemp("context")
    for rel in project_files():
        if rel.startswith("src/sentinelle/") or "/" not in rel:
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, context / rel)
    model = tiny_model.make(context / "models")
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sentinelle_tools.image", "build", "--tag", TAG,
         "--context", str(context)],
        env=e, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    size = image.size(ENGINE, TAG)
    print(f"\n[container] {ENGINE} built {TAG} in {seconds:.0f} s: {size / 1e6:.0f} MB")
    yield {"engine": ENGINE, "metadata": json.loads(model.with_suffix(".json").read_text())}


def config(engine: str) -> dict:
    if engine == "buildah":
        return json.loads(run("buildah", "inspect", "--type", "image", TAG))["Docker"]["config"]
    return json.loads(run(engine, "image", "inspect", TAG))[0]["Config"]


def test_the_image_is_configured_to_serve_as_non_root(built: dict) -> None:
    cfg = config(built["engine"])
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"][:2] == ["sentinelle", "serve"]
    assert cfg["Entrypoint"][-4:] == ["--host", "0.0.0.0", "--port", "8000"]
    assert "8000/tcp" in cfg["ExposedPorts"]
    assert "/readyz" in " ".join(cfg["Healthcheck"]["Test"])


@pytest.fixture(scope="module")
def served(built: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The service running inside the image; (base URL, pid of the server process)."""
    log = tmp_path_factory.mktemp("served") / "serve.log"
    port = free_port()
    if built["engine"] != "buildah":
        name = f"sentinelle-test-{os.getpid()}"
        cmd = [built["engine"], "run", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8000", TAG]
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            wait_for(f"http://127.0.0.1:{port}/readyz", proc, log, 200, timeout=180)
            pid = int(run(built["engine"], "inspect", "--format", "{{.State.Pid}}", name))
            yield f"http://127.0.0.1:{port}", pid
        finally:
            subprocess.run([built["engine"], "stop", name], capture_output=True, timeout=60)
            proc.wait(timeout=60)
        return
    ctr = run("buildah", "from", "--pull-never", TAG).strip()
    proc = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", ctr, "--",
         "sentinelle", "serve", "--model", "/srv/model/model.skops",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/readyz", proc, log, 200, timeout=180)
        server = [
            p for p in psutil.Process(proc.pid).children(recursive=True) if "serve" in p.cmdline()
        ]
        assert server, f"no server process under buildah run:\n{log.read_text()}"
        yield f"http://127.0.0.1:{port}", server[-1].pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        subprocess.run(["buildah", "rm", ctr], capture_output=True, timeout=60)


def test_the_service_runs_in_the_image_as_non_root(built: dict, served: tuple[str, int]) -> None:
    url, pid = served
    ready = httpx.get(f"{url}/readyz", timeout=10).json()
    assert ready == {
        "status": "ready",
        "detail": None,
        "model_version": built["metadata"]["model_version"],
    }
    spam = httpx.post(f"{url}/predict", json={"text": tiny_model.SPAM[0]}, timeout=10).json()
    assert spam["is_spam"] is True and spam["threshold"] == tiny_model.THRESHOLD
    assert spam["model_version"] == built["metadata"]["model_version"]
    ham = httpx.post(f"{url}/predict", json={"text": tiny_model.HAM[0]}, timeout=10).json()
    assert ham["is_spam"] is False and ham["spam_score"] < spam["spam_score"]
    uids = psutil.Process(pid).uids()
    assert (uids.real, uids.effective) == (10001, 10001)
