"""Serving benchmark: batch-scoring throughput and memory, API latency and batch throughput.

    python -m sentinelle_tools.benchmarks.serving [--model models/model.skops]
        [--data ../shared/datasets/sms_spam_collection.tsv] [--rows 250000 1000000]
        [--repeat 3] [--requests 2000] [--batches 200] [-o benchmark.json]

Batch scoring: the collection (UCI layout ``label<TAB>text``) is repeated to each
``--rows`` size as a TSV file with a header, then ``sentinelle score`` runs on it in
a fresh process while its memory is sampled. Reported: messages/s over the scoring
itself (model load excluded, shown apart) and peak RSS. Memory that does not grow with
the input is the point.

API: `sentinelle serve` on a free 127.0.0.1 port; one keep-alive httpx client sends
single-message requests one after another (p50/p90/p99 latency), then batches of 100
(messages/s and per-batch latency). Every figure is run ``--repeat`` times; the
table shows the min and median over runs, and the load average, since the machine
may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("sentinelle")

DATA = Path("../shared/datasets/sms_spam_collection.tsv")


def read_collection(path: Path) -> list[str]:
    """Messages of a UCI-layout file (``label<TAB>text``, no header, no quoting)."""
    texts = []
    with open(path, encoding="utf-8", newline="") as fh:
        for line in fh:
            _label, _, text = line.rstrip("\r\n").partition("\t")
            if text.strip():
                texts.append(text)
    return texts


def write_input(texts: list[str], rows: int, dest: Path) -> None:
    with open(dest, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([i, texts[i % len(texts)]])


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def batch_run(model: Path, src: Path) -> dict[str, Any]:
    """One scoring run in this process (called in a fresh child); returns timings and memory."""
    import psutil

    from sentinelle.batch.files import score_file
    from sentinelle.serving.scorer import Scorer

    me = psutil.Process()
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(me))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    scorer = Scorer.load(model)
    t1, cpu1 = time.perf_counter(), _cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        report = score_file(src, Path(tmp) / "out.tsv", scorer=scorer, progress=False)
    t2, cpu2 = time.perf_counter(), _cpu_seconds()
    stop.set()
    sampler.join()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "rows": report.rows_scored,
        "load_s": t1 - t0,
        "score_s": t2 - t1,
        "msg_per_s": report.rows_scored / (t2 - t1),
        # CPU time of this process and its (reaped) workers: what the machine's load does not
        # change.
        "msg_per_cpu_s": report.rows_scored / (cpu2 - cpu1),
        "peak_rss_process_mb": max(own, workers_peak) / 2**20,
        "peak_rss_tree_mb": peak[0] / 2**20,
    }


def _cpu_seconds() -> float:
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def bench_batch(
    model: Path, texts: list[str], sizes: list[int], repeat: int, tmp: Path
) -> dict[int, list[dict]]:
    results: dict[int, list[dict]] = {}
    for rows in sizes:
        src = tmp / f"input-{rows}.tsv"
        write_input(texts, rows, src)
        log.info("batch scoring: %d rows (%.0f MB)", rows, src.stat().st_size / 2**20)
        results[rows] = []
        for i in range(repeat):
            cmd = [
                sys.executable,
                "-m",
                "sentinelle_tools.benchmarks.serving",
                "_batch-run",
                str(model),
                str(src),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            log.info(
                "  run %d: %.0f msg/s (%.0f per CPU second), peak RSS %.0f MB (tree %.0f MB)",
                i + 1,
                run["msg_per_s"],
                run["msg_per_cpu_s"],
                run["peak_rss_process_mb"],
                run["peak_rss_tree_mb"],
            )
            results[rows].append(run)
        src.unlink()
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_api(
    model: Path, texts: list[str], requests: int, batches: int, repeat: int
) -> list[dict[str, float]]:
    import httpx

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentinelle.cli",
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    runs = []
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the API server did not become ready")
                time.sleep(0.2)
            for _ in range(200):  # warm-up
                client.post("/predict", json={"text": texts[0]})
            for r in range(repeat):
                single = []
                for i in range(requests):
                    t = time.perf_counter()
                    response = client.post(
                        "/predict", json={"text": texts[(i * 7 + r) % len(texts)]}
                    )
                    single.append(time.perf_counter() - t)
                    response.raise_for_status()
                batch = []
                start = time.perf_counter()
                for i in range(batches):
                    chunk = [texts[(i * 100 + j + r) % len(texts)] for j in range(100)]
                    t = time.perf_counter()
                    client.post("/predict/batch", json={"texts": chunk}).raise_for_status()
                    batch.append(time.perf_counter() - t)
                elapsed = time.perf_counter() - start
                run = {
                    "single_p50_ms": _percentile(single, 50) * 1000,
                    "single_p90_ms": _percentile(single, 90) * 1000,
                    "single_p99_ms": _percentile(single, 99) * 1000,
                    "single_rps": requests / sum(single),
                    "batch100_p50_ms": _percentile(batch, 50) * 1000,
                    "batch100_p99_ms": _percentile(batch, 99) * 1000,
                    "batch100_msg_per_s": batches * 100 / elapsed,
                }
                log.info("api run %d: %s", r + 1, ", ".join(f"{k} {v:.1f}" for k, v in run.items()))
                runs.append(run)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return runs


def _summary(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f}"


def _maxmed(values: list[float]) -> str:
    return f"{max(values):.1f} / {statistics.median(values):.1f}"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["_batch-run"]:
        p = argparse.ArgumentParser()
        p.add_argument("model", type=Path)
        p.add_argument("src", type=Path)
        a = p.parse_args(argv[1:])
        print(json.dumps(batch_run(a.model, a.src)))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m sentinelle_tools.benchmarks.serving", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", type=Path, default=Path("models/model.skops"))
    parser.add_argument(
        "--data", type=Path, default=DATA, help="UCI-layout collection (default: %(default)s)"
    )
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[250_000, 1_000_000],
        help="input sizes (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure (default: %(default)s)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="single-message requests per run (default: %(default)s)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=200,
        help="batch-of-100 requests per run (default: %(default)s)",
    )
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("-o", "--output", type=Path, help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="benchmark: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per request
    if not args.data.is_file():
        sys.stderr.write(
            f"benchmark: error: {args.data}: not found (the full SMS Spam Collection, UCI layout)\n"
        )
        return 2
    texts = read_collection(args.data)
    out: dict[str, Any] = {
        "cores": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "messages": len(texts),
    }
    lines = [
        f"Model `{args.model}`, {len(texts)} messages from `{args.data}`, {os.cpu_count()} cores, "
        f"load average before {os.getloadavg()[0]:.2f}; min / median of {args.repeat} runs.",
        "",
    ]
    if not args.skip_batch:
        with tempfile.TemporaryDirectory() as tmp:
            batch = bench_batch(args.model, texts, args.rows, args.repeat, Path(tmp))
        out["batch"] = batch
        lines += [
            "| batch scoring | rows | msg/s (max / median) | msg per CPU second (max / median) "
            "| model load s | peak RSS, largest process MB | peak RSS, process tree MB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for rows, runs in batch.items():
            lines.append(
                f"| `sentinelle score` TSV | {rows:,} | "
                f"{_maxmed([r['msg_per_s'] for r in runs])} | "
                f"{_maxmed([r['msg_per_cpu_s'] for r in runs])} | "
                f"{_summary([r['load_s'] for r in runs])} | "
                f"{_summary([r['peak_rss_process_mb'] for r in runs])} | "
                f"{_summary([r['peak_rss_tree_mb'] for r in runs])} |"
            )
        lines.append("")
    if not args.skip_api:
        api = bench_api(args.model, texts, args.requests, args.batches, args.repeat)
        out["api"] = api
        lines += ["| API (httpx, keep-alive, loopback) | min / median |", "|---|---:|"]
        for key in api[0]:
            lines.append(f"| {key} | {_summary([r[key] for r in api])} |")
        lines.append("")
    out["load_average_after"] = os.getloadavg()
    lines.append(f"Load average after: {os.getloadavg()[0]:.2f}.")
    print("\n".join(lines))
    if args.output:
        args.output.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
