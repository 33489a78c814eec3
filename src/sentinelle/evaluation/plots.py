"""What the evaluate stage draws and lists: the threshold curve, the error table, the
top-features chart, and DVCLive's plot files made strict JSON."""

from __future__ import annotations

import json
import math
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sentinelle import io


def threshold_curve(
    y_true: np.ndarray, scores: np.ndarray, points: int = 201
) -> list[dict[str, float]]:
    """Ham FPR and spam recall at evenly spaced thresholds in [0, 1] (scores are probabilities)."""
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    ham = np.sort(scores[y_true == 0])
    spam = np.sort(scores[y_true == 1])
    thresholds = np.round(np.linspace(0, 1, points), 6)  # the values written are the values used
    # Share of each class scoring >= t: 1 - (number strictly below t) / n.
    ham_fpr = 1 - np.searchsorted(ham, thresholds, side="left") / max(len(ham), 1)
    recall = 1 - np.searchsorted(spam, thresholds, side="left") / max(len(spam), 1)
    return [
        {
            "threshold": round(float(t), 6),
            "ham_fpr": round(float(f), 6),
            "spam_recall": round(float(r), 6),
        }
        for t, f, r in zip(thresholds, ham_fpr, recall, strict=True)
    ]


def error_table(labels: Any, messages: Any, scores: np.ndarray, threshold: float, n: int) -> str:
    """TSV of the ``n`` highest-scoring misclassified ham and ``n`` lowest-scoring missed spam."""
    labels = np.asarray(labels)
    messages = np.asarray(messages, dtype=object)
    scores = np.asarray(scores, dtype=np.float64)
    flagged = scores >= threshold
    fp = np.flatnonzero((labels == "ham") & flagged)
    fn = np.flatnonzero((labels == "spam") & ~flagged)
    fp = fp[np.argsort(-scores[fp], kind="stable")][:n]
    fn = fn[np.argsort(scores[fn], kind="stable")][:n]
    lines = ["kind\tscore\tlabel\tmessage"]
    for kind, rows in (("false_positive", fp), ("false_negative", fn)):
        for i in rows:
            message = " ".join(str(messages[i]).split())  # one line, no tabs
            lines.append(f"{kind}\t{scores[i]:.6f}\t{labels[i]}\t{message}")
    return "\n".join(lines) + "\n"


def make_strict_json(path: Path) -> None:
    """Rewrite a DVCLive plot file whose thresholds hold ``Infinity`` as strict JSON (null)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return value

    io.write_json(path, finite(data))


def plot_top_features(features: dict[str, list[tuple[str, float]]], title: str) -> bytes:
    """Horizontal bar charts of the most influential features per class, as reproducible
    PNG bytes (matplotlib's Figure API with the Agg canvas: no pyplot, no GUI backend)."""
    panels = [
        (label, items)
        for label, items in (("spam", features["spam"]), ("ham", features["ham"]))
        if items
    ]
    with matplotlib.rc_context({"svg.hashsalt": "sentinelle", "font.size": 9}):
        fig = Figure(figsize=(5.5 * len(panels), 0.28 * max(len(i) for _, i in panels) + 1.2))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(panels))
        axes = np.atleast_1d(axes)
        for ax, (label, items) in zip(axes, panels, strict=True):
            # Named as a person reads them (explanations.label: "free", "“·fr”").
            names = [name for name, _ in items][::-1]
            values = [abs(value) for _, value in items][::-1]
            ax.barh(range(len(items)), values, color="#c0392b" if label == "spam" else "#2e86c1")
            ax.set_yticks(range(len(items)), names, fontfamily="monospace")
            ax.set_title(f"towards {label}" if features["ham"] else "importance (unsigned)")
            ax.set_xlabel("|weight|")
        fig.suptitle(title)
        fig.tight_layout()
        png = BytesIO()
        # No Software/date metadata: the same figure gives the same bytes.
        fig.savefig(png, format="png", dpi=100, metadata={"Software": None})
    return png.getvalue()
