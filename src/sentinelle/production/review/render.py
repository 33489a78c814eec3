"""The report's plots as PNG files, drawn offline with matplotlib from the committed plot data.

One small chart per plot and revision (ROC, precision-recall, DET, threshold, confusion
matrix), with fixed axes so that two revisions' charts compare at a glance. The PNGs carry
no timestamp or software tag: the same data gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sentinelle import io

TITLES = {
    "roc": "ROC",
    "precision_recall": "Precision-recall",
    "det": "DET",
    "threshold": "Threshold",
    "confusion": "Confusion matrix",
}
CLASSES = ("ham", "spam")


# Shares near 0 matter most for spam (0.1 % of ham flagged): linear up to LINTHRESH, then log.
LINTHRESH = 1e-3
LOG_TICKS = [0, 1e-3, 1e-2, 1e-1, 1]
CURVES = {  # plot -> (x, y) columns of each curve
    "roc": [("fpr", "tpr")],
    "precision_recall": [("recall", "precision")],
    "det": [("fpr", "fnr")],
    "threshold": [("threshold", "spam_recall"), ("threshold", "ham_fpr")],
}


def _curves(ax: Any, name: str, rows: list[dict[str, Any]], style: dict[str, Any]) -> None:
    for x, y in CURVES[name]:
        label = y.replace("_", " ") if name == "threshold" else None
        if style.get("label"):
            label = f"{style['label']}{f' {label}' if label else ''}"
        ax.plot(
            [r[x] for r in rows],
            [r[y] for r in rows],
            **{**style, "label": label},
        )


def _log_axis(ax: Any, which: str) -> None:
    getattr(ax, f"set_{which}scale")("symlog", linthresh=LINTHRESH)
    axis = getattr(ax, f"{which}axis")
    axis.set_ticks(LOG_TICKS)
    axis.set_major_formatter("{x:g}")


def _draw(
    ax: Any,
    name: str,
    rows: list[dict[str, Any]],
    threshold: float | None,
    reference: tuple[str, list[dict[str, Any]]] | None,
) -> None:
    if name in CURVES:
        if reference is not None:
            ref = {"color": "0.6", "linestyle": "--", "linewidth": 1.0, "label": reference[0]}
            _curves(ax, name, reference[1], ref)
        _curves(ax, name, rows, {"linewidth": 1.4, "label": "this" if reference else None})
    if name == "roc":
        _log_axis(ax, "x")
        ax.set(xlabel="ham flagged (FPR)", ylabel="spam caught (TPR)", xlim=(0, 1), ylim=(0, 1.01))
    elif name == "precision_recall":
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    elif name == "det":
        _log_axis(ax, "x")
        _log_axis(ax, "y")
        ax.set(xlabel="FPR", ylabel="FNR", xlim=(0, 1), ylim=(0, 1))
    elif name == "threshold":
        if threshold is not None:
            ax.axvline(threshold, color="0.4", linewidth=0.8, linestyle=":", label="threshold")
        ax.set(xlabel="threshold (spam score)", ylabel="share flagged", xlim=(0, 1), ylim=(0, 1.01))
    elif name == "confusion":
        counts = Counter((r["actual"], r["predicted"]) for r in rows)
        grid = [[counts[(a, p)] for p in CLASSES] for a in CLASSES]
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, max(map(max, grid))))
        for i, row in enumerate(grid):
            for j, n in enumerate(row):
                dark = n > 0.6 * max(map(max, grid))
                ax.text(
                    j,
                    i,
                    f"{n:,}",
                    ha="center",
                    va="center",
                    fontsize=11,
                    color="white" if dark else "0.1",
                )
        ax.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=CLASSES,
            yticklabels=CLASSES,
            xlabel="predicted",
            ylabel="actual",
        )
    else:
        raise ValueError(f"unknown plot {name!r}")
    if name != "confusion":
        ax.grid(True, color="0.92", linewidth=0.6)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc="best", fontsize=6, frameon=False)


def draw(
    dest: Path,
    name: str,
    rows: list[dict[str, Any]],
    title: str,
    threshold: float | None = None,
    reference: tuple[str, list[dict[str, Any]]] | None = None,
) -> Path:
    """Draw one plot of one revision into ``dest`` (PNG, written atomically); ``reference``
    (label, rows) is another revision's curve drawn under it, dashed grey."""
    with matplotlib.rc_context({"font.size": 8}):
        fig = Figure(figsize=(3.4, 3.0), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        _draw(ax, name, rows, threshold, reference)
        ax.set_title(f"{TITLES[name]}: {title}", fontsize=8)
        with io.atomic_path(dest) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    return dest
