"""Issue 28's attacks on `sentinelle serve`, and the load test under a heavy request.

    python -m sentinelle_tools.benchmarks.attacks attacks [--model models/model.skops]
    python -m sentinelle_tools.benchmarks.attacks load [--seconds 30] [--concurrency 16]
        [--heavy TEXTS CHARS EXPLAIN]

Each runs `sentinelle serve` on a free 127.0.0.1 port (``--src DIR``: the code of another
checkout, e.g. ``git archive main src | tar -x -C /tmp/main`` then ``--src /tmp/main/src
--no-tokens`` for the figures before the fix) and samples its RSS every 0.1 s.

``attacks``: a report with a NUL byte, one longer than the readers' limit (with
``--max-chars 8000``), a junk line in the store (then a restart), ``/predict/batch?explain=50``
with 1,000 messages of 5,000 characters of distinct words, a chunked 400 MB body and 40 KB
of headers; for each, the status, what a reader then says, the time, /healthz's slowest
answer meanwhile and the server's peak RSS.

``load``: ``--concurrency`` clients (aiohttp, keep-alive) post SMS messages to /predict for
``--seconds`` (metrics on, as served): requests/s, p50, p99, errors; with ``--heavy N C K``
a second client meanwhile posts, again and again, a batch of N messages of C characters of
distinct words with ``?explain=K`` (0: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

DATA = Path("../shared/datasets/sms_spam_collection.tsv")
SAMPLES = ["WIN a FREE prize! Call 09061701461 now", "see you at lunch tomorrow?"]


def words(n: int, seed: int) -> str:
    """About ``n`` characters of distinct random words (the costliest text to score)."""
    rng = random.Random(seed)
    out, size = [], 0
    while size < n:
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:n]


class Server:
    """`sentinelle serve` in a child process, its peak RSS sampled."""

    def __init__(self, args: argparse.Namespace, *extra: str) -> None:
        import psutil

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        if args.src:
            env["PYTHONPATH"] = str(Path(args.src).resolve())
        cmd = [sys.executable, "-m", "sentinelle.cli", "serve", "--model", str(args.model)]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port), "--no-access-log", "--log-level", "warning", *extra],
            env=env,
        )
        self.ps = psutil.Process(self.proc.pid)
        self.peak = 0
        self._stop = threading.Event()
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, self.ps.memory_info().rss)
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Healthz:
    """Polls /healthz in a thread; the slowest answer while it runs."""

    def __init__(self, url: str) -> None:
        self.url, self.slowest, self._stop = url, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=300) as c:
            while not self._stop.is_set():
                t = time.perf_counter()
                c.get(f"{self.url}/healthz")
                self.slowest = max(self.slowest, time.perf_counter() - t)
                self._stop.wait(0.1)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.slowest


def stats_line(args: argparse.Namespace, store: Path) -> str:
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    cmd = [sys.executable, "-m", "sentinelle", "feedback", "stats", "--file", str(store)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = (proc.stdout.strip() or proc.stderr.strip().splitlines()[-1])[:160]
    return f"`feedback stats` exit {proc.returncode}: {out}"


def _token_args(args: argparse.Namespace, tmp: Path) -> tuple[list[str], dict[str, str]]:
    if args.no_tokens:
        return [], {}
    from sentinelle.serving import tokens

    file = tmp / "tokens.json"
    file.unlink(missing_ok=True)
    _, secret = tokens.add(file, "attacker", ("feedback",))
    return ["--tokens", str(file)], {"Authorization": f"Bearer {secret}"}


def _raw(port: int, head: bytes, body: Iterator[bytes]) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=600) as s:
        s.sendall(head)
        sent, answer = 0, b""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in body:
                s.sendall(chunk)
                sent += len(chunk)
        with contextlib.suppress(ConnectionResetError):
            while data := s.recv(65536):
                answer += data
    return sent, answer


def explain_attack(args: argparse.Namespace) -> str:
    server = Server(args, "--max-chars", "5000", "--max-batch", "1000")
    try:
        texts = [words(5000, i) for i in range(1000)]
        watch = Healthz(server.url)
        t = time.perf_counter()
        r = httpx.post(f"{server.url}/predict/batch?explain=50", json={"texts": texts}, timeout=900)
        took = time.perf_counter() - t
    finally:
        server.stop()
    return (
        f"| /predict/batch?explain=50, 1,000 x 5,000 characters | {r.status_code} "
        f"{r.text[:90] if r.status_code != 200 else ''} | {took:.1f} s, /healthz slowest "
        f"{watch.stop():.2f} s, peak RSS {server.peak / 2**20:.0f} MB |"
    )


def attacks(args: argparse.Namespace) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        store = tmp / "feedback.jsonl"
        extra, headers = _token_args(args, tmp)
        for name, text, max_chars in (
            ("NUL report", "call me\x00now", "5000"),
            ("over-long report (serve --max-chars 8000)", "x" * 6000, "8000"),
        ):
            store.unlink(missing_ok=True)
            server = Server(args, "--feedback", str(store), "--max-chars", max_chars, *extra)
            try:
                r = httpx.post(
                    f"{server.url}/feedback", json={"text": text, "label": "spam"}, headers=headers
                )
            finally:
                server.stop()
            server = Server(args, "--feedback", str(store), *extra)
            try:
                again = httpx.post(
                    f"{server.url}/feedback", json={"text": "hi", "label": "ham"}, headers=headers
                )
            finally:
                server.stop()
            lines.append(
                f"| {name} | {r.status_code} {r.text[:90]} | {stats_line(args, store)}; "
                f"after a restart POST /feedback: {again.status_code} |"
            )
        store.write_text('{"text": "free cash", "label": "spam"}\njunk\n')
        server = Server(args, "--feedback", str(store), *extra)
        try:
            post = httpx.post(
                f"{server.url}/feedback", json={"text": "hi", "label": "ham"}, headers=headers
            )
            stats = httpx.get(f"{server.url}/feedback/stats", headers=headers)
        finally:
            server.stop()
        lines.append(
            f"| one junk line, server restarted | POST /feedback {post.status_code}, "
            f"GET /feedback/stats {stats.status_code} {stats.text[:90]} | "
            f"{stats_line(args, store)} |"
        )

        if not args.skip_explain:
            lines.append(explain_attack(args))
        server = Server(args)
        try:
            head = (
                b"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n" % (1 << 20) + b"[" * (1 << 20) + b"\r\n"
            t = time.perf_counter()
            sent, answer = _raw(server.port, head, iter([chunk] * 400 + [b"0\r\n\r\n"]))
            took = time.perf_counter() - t
            time.sleep(0.5)
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
            lines.append(
                f"| chunked 400 MB body | {status} | answered after {sent / 2**20:.0f} MB sent, "
                f"{took:.1f} s, peak RSS {server.peak / 2**20:.0f} MB |"
            )
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
            _, answer = _raw(server.port, head, iter([]))
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
            lines.append(f"| 40 KB of headers | {status} | |")
        finally:
            server.stop()
    return lines


def _texts(path: Path) -> list[str]:
    if not path.is_file():
        return SAMPLES
    return [line.split("\t", 1)[1].rstrip("\n") for line in path.open(encoding="utf-8")]


async def _load(url: str, texts: list[str], seconds: float, concurrency: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                async with session.post(
                    f"{url}/predict", json={"text": texts[i % len(texts)]}
                ) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - t)
            i += concurrency

    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(k, session) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": 1000 * latencies[-1],
        "errors": errors,
    }


def load(args: argparse.Namespace) -> list[str]:
    server = Server(args, "--max-chars", "5000", "--max-batch", "1000")
    heavy: list[tuple[int, float]] = []
    stop = threading.Event()

    def send_heavy() -> None:
        n, chars, k = args.heavy
        body = {"texts": [words(chars, i) for i in range(n)]}
        query = f"?explain={k}" if k else ""
        with httpx.Client(timeout=900) as c:
            while not stop.is_set():
                t = time.perf_counter()
                r = c.post(f"{server.url}/predict/batch{query}", json=body)
                heavy.append((r.status_code, time.perf_counter() - t))

    try:
        with httpx.Client() as c:  # warm-up
            for text in SAMPLES * 50:
                c.post(f"{server.url}/predict", json={"text": text})
        threads = []
        if args.heavy:
            threads.append(threading.Thread(target=send_heavy, daemon=True))
            threads[0].start()
            time.sleep(1)  # the first heavy request is in flight
        watch = Healthz(server.url)
        result = asyncio.run(_load(server.url, _texts(args.data), args.seconds, args.concurrency))
        result["healthz_slowest_s"] = watch.stop()
        stop.set()
        for t in threads:
            t.join()
    finally:
        server.stop()
    result["peak_rss_mb"] = server.peak / 2**20
    what = (
        f"with {args.heavy[0]} x {args.heavy[1]} characters, explain={args.heavy[2]} in flight "
        f"({len(heavy)} sent: statuses {sorted({s for s, _ in heavy})}, "
        f"{min(t for _, t in heavy):.1f}-{max(t for _, t in heavy):.1f} s each)"
        if args.heavy
        else "alone"
    )
    return [
        f"| /predict, {args.concurrency} clients, {args.seconds:g} s, {what} | "
        f"{result['rps']:.0f} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} | "
        f"{result['max_ms']:.0f} | {result['errors']} | {result['healthz_slowest_s']:.2f} | "
        f"{result['peak_rss_mb']:.0f} |",
        json.dumps(result),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sentinelle_tools.benchmarks.attacks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("what", choices=["attacks", "load"])
    parser.add_argument("--model", type=Path, default=Path("models/model.skops"))
    parser.add_argument("--src", type=Path, help="run the server from this src folder")
    parser.add_argument("--no-tokens", action="store_true", help="a server without --tokens")
    parser.add_argument("--skip-explain", action="store_true", help="attacks: not the batch")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--heavy", type=int, nargs=3, metavar=("TEXTS", "CHARS", "EXPLAIN"))
    parser.add_argument("--data", type=Path, default=DATA, help="UCI-layout SMS collection")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("\n".join(attacks(args) if args.what == "attacks" else load(args)))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
