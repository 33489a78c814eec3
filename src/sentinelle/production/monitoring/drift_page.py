"""The page a person reads after ``sentinelle monitor``: plain HTML, charts drawn with
matplotlib and embedded as PNG (base64), so the one file opens anywhere, offline."""

from __future__ import annotations

import base64
import html
import io as _io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sentinelle.production.monitoring.descriptors import FLAGS
from sentinelle.production.monitoring.drift import Batch, Check

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 12px 0 24px; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
tr.fail td { background: #fde2e1; } tr.pass td { background: #e6f4e6; }
.verdict { font-size: 1.3em; font-weight: bold; }
img { max-width: 100%; }
"""


def _png(fig: Any) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def charts(ref: dict[str, Any], batch: Batch) -> str:
    """Score histograms (reference vs batch), message lengths, and descriptor bars, as base64."""
    fig = Figure(figsize=(15, 4.2))
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    bins = np.linspace(0, 1, 21)
    ref_scores = np.asarray(ref["scores"]["sample"])
    for values, label in ((ref_scores, "reference (test split)"), (batch.scores, "batch")):
        weights = np.full(len(values), 1 / max(len(values), 1))
        ax1.hist(values, bins=bins, weights=weights, alpha=0.55, label=label)
    ax1.axvline(ref["threshold"], color="k", linestyle="--", label="threshold")
    ax1.set(title="Spam scores", xlabel="spam score", ylabel="share of messages", yscale="log")
    ax1.legend()
    ref_len, batch_len = np.asarray(ref["descriptors"]["length"]), batch.descriptors["length"]
    top = float(np.percentile(np.concatenate([ref_len, batch_len]), 99)) + 1
    len_bins = np.linspace(0, top, 31)
    for values, label in ((ref_len, "reference (training)"), (batch_len, "batch")):
        weights = np.full(len(values), 1 / max(len(values), 1))
        ax2.hist(np.clip(values, 0, top), bins=len_bins, weights=weights, alpha=0.55, label=label)
    ax2.set(title="Message length", xlabel="characters", ylabel="share of messages")
    ax2.legend()
    x = np.arange(len(FLAGS))
    ax3.bar(x - 0.2, [ref["descriptors"][f] for f in FLAGS], 0.4, label="reference")
    ax3.bar(x + 0.2, [batch.descriptors[f].mean() for f in FLAGS], 0.4, label="batch")
    ax3.set_xticks(x, [f.removeprefix("has_") for f in FLAGS])
    ax3.set(title="Messages with ...", ylabel="share of messages")
    ax3.legend()
    fig.tight_layout()
    return _png(fig)


def page(summary: dict[str, Any], checks: list[Check], chart_png: str, source: str) -> str:
    """The whole HTML page: verdict, one row per check, the charts, the estimates."""
    rows = "\n".join(
        f'<tr class="{"pass" if c.passed else "fail"}"><td>{html.escape(c.name)}</td>'
        f"<td>{c.value:.4g}</td><td>{c.limit:g}</td><td>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>"
        for c in checks
    )
    failed = summary["failed"]
    verdict = f"drift: {len(failed)} check(s) failed" if failed else "no drift: every check passed"
    est, ref_est = summary["estimated"], summary["reference_estimated"]
    perf = [
        ("label-free precision", ref_est["precision"], est["precision"]),
        ("label-free recall", ref_est["recall"], est["recall"]),
    ]
    if "actual" in summary:
        act, ref_act = summary["actual"], summary["reference_actual"]
        perf += [(f"real {k}", ref_act[k], act[k]) for k in ("precision", "recall", "ham_fpr")]
    perf_rows = "\n".join(
        f"<tr><td>{name}</td><td>{a:.4f}</td><td>{b:.4f}</td></tr>" for name, a, b in perf
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sentinelle monitoring: {html.escape(source)}</title>
<style>{STYLE}</style></head>
<body>
<h1>Sentinelle monitoring</h1>
<p>Batch <code>{html.escape(source)}</code>: {summary["messages"]} messages, model
<code>{html.escape(summary["model_version"])}</code>, threshold {summary["threshold"]:.4f}.</p>
<p class="verdict" id="verdict">{verdict}</p>
<table id="checks">
<tr><th>check</th><th>figure</th><th>limit</th><th>result</th><th>detail</th></tr>
{rows}
</table>
<h2>Distributions</h2>
<img id="charts" alt="score, length and descriptor distributions"
 src="data:image/png;base64,{chart_png}">
<h2>Performance</h2>
<table id="performance"><tr><th>figure</th><th>reference</th><th>batch</th></tr>
{perf_rows}
</table>
</body></html>
"""
