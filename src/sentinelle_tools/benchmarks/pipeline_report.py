"""The pipeline benchmark's results as people read them: the markdown table and the scaling plot."""

from __future__ import annotations

import math
import statistics
from itertools import pairwise
from pathlib import Path
from typing import Any

from sentinelle import io

# Targets on a 2-core machine: size -> (cold seconds, peak RSS MB); issue 8, and issue 19's
# out-of-core run (10M messages within 8 GB per process, no time bound).
TARGETS = {
    5574: (7.0, None),
    100_000: (30.0, 500.0),
    1_000_000: (600.0, 4096.0),
    10_000_000: (None, 8192.0),
}
NOOP_TARGET = 0.7


def series(run: dict[str, Any]) -> str:
    """A configuration, and the commit it ran on when that is not the working tree."""
    rev = run.get("rev", "workspace")
    return run["config"] if rev == "workspace" else f"{run['config']} ({rev})"


def exponent(runs: list[dict[str, Any]], config: str) -> float | None:
    """Least-squares slope of log(cold time) against log(messages)."""
    pts = [(math.log(r["size"]), math.log(min(r["cold_s"]))) for r in runs if series(r) == config]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def _peak(run: dict[str, Any]) -> float:
    return max(v["maxrss_mb"] for v in run["stages"].values())


def markdown(results: dict[str, Any]) -> str:
    runs = results["runs"]
    stage_names = list(runs[0]["stages"])
    several = len({r.get("rev", "workspace") for r in runs}) > 1
    head = [
        "messages",
        "config",
        *(["rev"] if several else []),
        "runs",
        "cold repro min / median (s)",
        *[f"{s} (s)" for s in stage_names],
        "no-op min / median (s)",
        "peak RSS (MB), stage",
        "accuracy",
        "MCC",
        "spam recall",
        "ham FP",
    ]
    lines = [
        "Cold `dvc repro -f` (min / median over the runs; stage columns: median wall time "
        "with the stage's import time in brackets), no-op `dvc repro`, and the peak RSS of the "
        f"biggest stage, on {results['cpus']} cores (1-minute load average "
        f"{results.get('load_before', float('nan')):.1f} before the runs and "
        f"{results.get('load_after', float('nan')):.1f} after them, their own load included).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in runs:
        top = max(r["stages"], key=lambda s: r["stages"][s]["maxrss_mb"])
        m = r["metrics"]
        cells = [
            f"{r['size']:,}",
            r["config"],
            *([r["rev"]] if several else []),
            str(len(r["cold_s"])),
            f"{min(r['cold_s']):.2f} / {statistics.median(r['cold_s']):.2f}",
            *[
                f"{statistics.median(r['stages'][s]['wall_s']):.2f} "
                f"({r['stages'][s]['import_s']:.2f})"
                for s in stage_names
            ],
            f"{min(r['noop_s']):.2f} / {statistics.median(r['noop_s']):.2f}",
            f"{_peak(r):.0f} ({top})",
            f"{m.get('accuracy', float('nan')):.4f}",
            f"{m.get('mcc', float('nan')):.4f}",
            f"{m.get('recall', float('nan')):.4f}",
            f"{m.get('fp', '?')} of {m.get('n_ham', '?')}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for config in sorted({series(r) for r in runs}):
        k = exponent(runs, config)
        if k is not None:
            sizes = sorted(r["size"] for r in runs if series(r) == config)
            pts = sorted((r["size"], min(r["cold_s"])) for r in runs if series(r) == config)
            steps = ", ".join(
                f"{a:,} → {b:,}: {math.log(tb / ta) / math.log(b / a):.2f}"
                for (a, ta), (b, tb) in pairwise(pts)
            )
            lines.append(
                f"\nCold time grows as messages^{k:.2f} for `{config}` (least squares on log-log "
                f"of the min cold time, {', '.join(f'{s:,}' for s in sizes)} messages; "
                f"between consecutive sizes: {steps})."
            )
    lines += ["", "Against the targets (default configuration, min cold time):", ""]
    for r in runs:
        if r["config"] != "default" or r["size"] not in TARGETS:
            continue
        seconds, mb = TARGETS[r["size"]]
        verdict = f"cold {min(r['cold_s']):.1f} s"
        if seconds is not None:
            verdict += (
                f" (target <= {seconds:g} s: {'met' if min(r['cold_s']) <= seconds else 'missed'})"
            )
        if mb is not None:
            verdict += (
                f", peak {_peak(r):.0f} MB (target <= {mb:g} MB: "
                f"{'met' if _peak(r) <= mb else 'missed'})"
            )
        if r["size"] == 5574:
            verdict += (
                f", no-op {min(r['noop_s']):.2f} s (target <= {NOOP_TARGET} s: "
                f"{'met' if min(r['noop_s']) <= NOOP_TARGET else 'missed'})"
            )
        lines.append(f"- {r['size']:,} messages: {verdict}")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for config in sorted({series(r) for r in results["runs"]}):
        runs = [r for r in results["runs"] if series(r) == config]
        sizes = [r["size"] for r in runs]
        ax_t.plot(sizes, [min(r["cold_s"]) for r in runs], "o-", label=config)
        ax_m.plot(sizes, [_peak(r) for r in runs], "o-", label=config)
    for ax, title, unit in (
        (ax_t, "Cold dvc repro -f", "seconds"),
        (ax_m, "Peak RSS of any stage", "MB"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("messages")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with io.atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
