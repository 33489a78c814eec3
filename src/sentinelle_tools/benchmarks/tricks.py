"""The fast engine's tricks, each switched off in turn, measured where users run it.

In a temporary copy of the project (``benchmarks.pipeline.copy_project``) whose pipeline has
run once (``dvc repro``) on the corpus of ``--size`` messages (``benchmarks.corpus``, cached in
.bench/), the train and evaluate stages run alone (``src/train.py``, then ``src/evaluate.py``)
by each variant: every trick on, or one switched off by a patch applied before the stage
starts. Variants are interleaved (A B C D, then D C B A, ...); per run: wall time, CPU time
(user + system, the stage's children included) and peak RSS (the largest process), from
``os.wait4``; and the model file's size and hash (a variant that only changes speed must give
the same bytes).

    PYTHONPATH=src python -m sentinelle_tools.benchmarks.tricks --size 100000 --runs 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sentinelle_tools.benchmarks.pipeline import ROOT, copy_project, corpus_file, set_params

STAGES = ("train", "evaluate")

# What each variant runs before the stage script: a patch that switches one trick off.
VARIANTS = {
    "every trick on": "",
    "n-grams counted by scikit-learn": (
        "from sentinelle.modeling.fast import counting, vectorizer\n"
        "counting.countable = vectorizer.countable = lambda *args: False\n"
    ),
    "vocabulary saved as skops' dict": (
        "from sklearn.feature_extraction.text import TfidfVectorizer\n"
        "from sentinelle.modeling.fast.vectorizer import CompactTfidfVectorizer\n"
        "def state(self):\n"
        "    s = dict(TfidfVectorizer.__getstate__(self))\n"
        "    for k in ('vocabulary_utf8_', 'vocabulary_offsets_'):\n"
        "        s.pop(k, None)\n"
        "    return s\n"
        "CompactTfidfVectorizer.__getstate__ = state\n"
    ),
    "SVM fitted in the stage's process": (
        "from sentinelle.modeling.fast import training\ntraining.SOLVER_MIN_TEXTS = 10**12\n"
    ),
}


def run_stage(project: Path, stage: str, patch: str) -> dict[str, float]:
    """One run of ``src/<stage>.py`` after ``patch``: wall and CPU seconds, peak RSS in MB."""
    code = (
        f"{patch}import runpy, sys\n"
        f"sys.argv = ['src/{stage}.py']\n"
        f"runpy.run_path('src/{stage}.py', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=project, env=env, stdout=log, stderr=log
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise SystemExit(f"tricks: error: {stage} failed (exit code {process.returncode})")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,
    }


def markdown(results: dict[str, list[dict[str, float | str]]]) -> str:
    """One row per variant: each stage's wall min / median, CPU median and peak RSS."""

    def figures(runs: list[dict[str, float | str]]) -> str:
        wall = [float(r["wall"]) for r in runs]
        cpu = statistics.median(float(r["cpu"]) for r in runs)
        rss = max(float(r["rss"]) for r in runs)
        return f"{min(wall):.1f} / {statistics.median(wall):.1f} | {cpu:.1f} | {rss:.0f}"

    rows = [
        "| variant | train wall min / median (s) | train CPU (s) | train peak (MB) "
        "| evaluate wall min / median (s) | evaluate CPU (s) | evaluate peak (MB) "
        "| model.skops (bytes), sha256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        train = [r for r in runs if r["stage"] == "train"]
        evaluate = [r for r in runs if r["stage"] == "evaluate"]
        model = f"{int(train[-1]['size']):,}, {str(train[-1]['sha'])[:12]}"
        rows.append(f"| {name} | {figures(train)} | {figures(evaluate)} | {model} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000, help="messages in the corpus")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant")
    parser.add_argument("--only", action="append", help="measure only these variants")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sentinelle-tricks-") as tmp:
        project = copy_project(ROOT, Path(tmp) / "repo")
        set_params(project, corpus_file(args.size), {})
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        subprocess.run(["dvc", "repro", "-q"], cwd=project, env=env, check=True)
        sys.stdout.write(markdown(measure(project, args.runs, args.only)))
    return 0


def measure(
    project: Path, runs: int, only: list[str] | None
) -> dict[str, list[dict[str, float | str]]]:
    """Every variant's runs of the stages, interleaved."""
    names = [n for n in VARIANTS if not only or n in only or n == "every trick on"]
    results: dict[str, list[dict[str, float | str]]] = {name: [] for name in names}
    for round_ in range(runs):
        for name in names if round_ % 2 == 0 else names[::-1]:
            for stage in STAGES:
                figures: dict[str, float | str] = {"stage": stage}
                figures |= run_stage(project, stage, VARIANTS[name])
                model = (project / "models/model.skops").read_bytes()
                figures |= {"size": len(model), "sha": hashlib.sha256(model).hexdigest()}
                results[name].append(figures)
                sys.stderr.write(
                    f"tricks: {name}: {stage} {figures['wall']:.1f} s, {figures['rss']:.0f} MB\n"
                )
    return results


if __name__ == "__main__":
    sys.exit(main())
