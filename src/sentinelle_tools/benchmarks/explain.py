"""Explanation latency: one long message scored with and without its explanation, in process.

    python -m sentinelle_tools.benchmarks.explain [--model models/model.skops]
        [--data data/processed/test.parquet] [--chars 5000] [--k 10] [--repeat 200]

The message is the test split's raw messages joined by spaces and cut to ``--chars``
characters (the API's longest message is 5,000). ``Scorer.scores`` and ``Scorer.explain``
(what ``/predict`` and ``/predict?explain=K`` compute) each run ``--repeat`` times after a
warm-up that builds the explainer; the min, median and 90th percentile of the wall-clock
time and the median CPU time are printed in ms, with the load average, since the machine
may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sentinelle import io
from sentinelle.serving.scorer import Scorer


def long_message(data: Path, chars: int) -> str:
    """The raw messages of ``data`` joined by spaces, cut to ``chars`` characters."""
    messages = io.read_table(data)["message"].tolist()
    text = ""
    for message in messages:
        text += message + " "
        if len(text) >= chars:
            break
    return text[:chars]


def timings(call: Callable[[], object], repeat: int) -> dict[str, float]:
    """Min, median and 90th percentile of ``repeat`` calls' wall-clock time, and the median
    of their CPU time (what other jobs on the machine change least), in ms."""
    seconds, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    seconds.sort()
    return {
        "min_ms": round(1000 * seconds[0], 3),
        "median_ms": round(1000 * statistics.median(seconds), 3),
        "p90_ms": round(1000 * seconds[int(0.9 * (len(seconds) - 1))], 3),
        "cpu_median_ms": round(1000 * statistics.median(cpu), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.skops"))
    parser.add_argument("--data", type=Path, default=Path("data/processed/test.parquet"))
    parser.add_argument("--chars", type=int, default=5000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    scorer = Scorer.load(args.model)
    text = long_message(args.data, args.chars)
    scorer.explain([text], args.k)  # builds the explainer once, as the first request does
    result = {
        "model_version": scorer.version,
        "chars": len(text),
        "k": args.k,
        "load_before": os.getloadavg()[0],
        "score": timings(lambda: scorer.scores([text]), args.repeat),
        "explain": timings(lambda: scorer.explain([text], args.k), args.repeat),
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
