"""The report's plots as PNG files, drawn offline with matplotlib from the committed plot data.

One small chart per plot and revision (ROC, precision-recall, DET, threshold, confusion
matrix), with fixed axes so that two revisions' charts compare at a glance. The PNGs carry
no timestamp or software tag: the same data gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sentinelle import io

TITLES = {
    "roc": "ROC",
    "precision_recall": "Precision-recall",
    "det": "DET",
    "threshold": "Threshold",
    "confusion": "Confusion matrix",
}
CLASSES = ("ham", "spam")


def _curve(ax: Any, rows: list[dict[str, Any]], x: str, y: str, label: str) -> None:
    ax.plot([r[x] for r in rows], [r[y] for r in rows], label=label, linewidth=1.4)


def _draw(ax: Any, name: str, rows: list[dict[str, Any]], threshold: float | None) -> None:
    if name == "roc":
        _curve(ax, rows, "fpr", "tpr", "ROC")
        ax.plot([0, 1], [0, 1], color="0.8", linewidth=0.8, linestyle="--")
        ax.set(xlabel="ham flagged (FPR)", ylabel="spam caught (TPR)", xlim=(0, 1), ylim=(0, 1.01))
    elif name == "precision_recall":
        _curve(ax, rows, "recall", "precision", "PR")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    elif name == "det":
        _curve(ax, rows, "fpr", "fnr", "DET")
        ax.set(xscale="symlog", yscale="symlog", xlabel="FPR", ylabel="FNR")
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.xaxis.set_major_formatter("{x:g}")
        ax.yaxis.set_major_formatter("{x:g}")
    elif name == "threshold":
        _curve(ax, rows, "threshold", "spam_recall", "spam recall")
        _curve(ax, rows, "threshold", "ham_fpr", "ham FPR")
        if threshold is not None:
            ax.axvline(threshold, color="0.4", linewidth=0.8, linestyle=":", label="threshold")
        ax.set(xlabel="threshold (spam score)", ylabel="share flagged", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="center right", fontsize=7, frameon=False)
    elif name == "confusion":
        counts = Counter((r["actual"], r["predicted"]) for r in rows)
        grid = [[counts[(a, p)] for p in CLASSES] for a in CLASSES]
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(1, max(map(max, grid))))
        for i, row in enumerate(grid):
            for j, n in enumerate(row):
                ax.text(j, i, f"{n:,}", ha="center", va="center", fontsize=11, color="0.1")
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


def draw(
    dest: Path, name: str, rows: list[dict[str, Any]], title: str, threshold: float | None = None
) -> Path:
    """Draw one plot of one revision into ``dest`` (PNG, written atomically)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.size": 8}):
        fig = Figure(figsize=(3.4, 3.0), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        _draw(ax, name, rows, threshold)
        ax.set_title(f"{TITLES[name]}: {title}", fontsize=8)
        with io.atomic_path(dest) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    return dest
