"""``sentinelle report``: what a change did to the model, as a reviewer reads it (markdown).

A headline (model, spam recall, ham flagged, MCC, with their changes), the changed params,
the headline metrics of both revisions (and every test figure where both are at hand), the
plots of both side by side (PNG files in a folder next to the report) and the gate's verdict.
The same inputs give the same bytes: no dates, no absolute paths.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from sentinelle import io
from sentinelle.production.review import render
from sentinelle.production.review.gate import Verdict
from sentinelle.production.review.results import EVALUATE, METRIC_FILES, PLOT_FILES, Results

log = logging.getLogger("sentinelle.production.review")

# Direction of "better" by the metric's last key part; others get an arrow and no judgement.
HIGHER = {
    "accuracy",
    "precision",
    "recall",
    "f1",
    "mcc",
    "roc_auc",
    "average_precision",
    "recall_at_fpr_0_1pct",
    "tp",
    "tn",
    "mcc_low",
    "mcc_high",
    "recall_low",
    "recall_high",
}
LOWER = {"ham_fpr", "fp", "fn", "lam_pct", "one_minus_roca_pct", "recall_drop_points"}


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (
            f"`{value}`"
            if not isinstance(value, list)
            else "`[" + ", ".join(map(str, value)) + "]`"
        )
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


_ABSENT = object()


def _param(value: Any) -> str:
    """A param as JSON spells it; – when the revision has no such key."""
    return "–" if value is _ABSENT else f"`{json.dumps(value)}`"


def change(key: str, old: Any, new: Any) -> str:
    """``+0.0123 ▲ better``; empty when either side is missing, ``=`` when equal."""
    if not isinstance(old, int | float) or not isinstance(new, int | float):
        return ""
    delta = round(new - old, 6)
    if delta == 0:
        return "="
    leaf = key.rsplit(".", 1)[-1]
    arrow = "▲" if delta > 0 else "▼"
    judged = leaf in HIGHER or leaf in LOWER
    good = (delta > 0) == (leaf in HIGHER)
    text = f"{delta:+,}" if isinstance(old, int) and isinstance(new, int) else f"{delta:+.4f}"
    return f"{text} {arrow}" + (f" {'better' if good else 'worse'}" if judged else "")


def headline(base: Results, new: Results, verdict: Verdict) -> str:
    b, n = base.evaluate, new.evaluate
    parts = [f"**Gate: {'PASS' if verdict.passed else 'FAIL'}**"]
    for key, name in (("recall", "spam recall"), ("mcc", "MCC")):
        parts.append(
            f"{name} **{_num(n.get(key))}** ({change(key, b.get(key), n.get(key)) or 'n/a'})"
        )
    if {"fp", "n_ham"} <= set(n):
        was = f"{int(b['fp'])}" if "fp" in b else "–"
        parts.insert(
            2,
            f"ham flagged **{int(n['fp'])} of {int(n['n_ham']):,}** "
            f"({_num(n.get('ham_fpr'))}; was {was}, {change('fp', b.get('fp'), n.get('fp'))})",
        )
    model = f"`{new.model_version}`, " if new.model_version else ""
    if new.model_md5:
        same = (
            "unchanged"
            if new.model_md5 == base.model_md5
            else f"was md5 `{(base.model_md5 or '–')[:8]}`"
        )
        parts.append(f"model {model}md5 `{new.model_md5[:8]}` ({same})")
    return " · ".join(parts)


def params_table(base: Results, new: Results) -> list[str]:
    keys = [
        k
        for k in dict.fromkeys([*base.params, *new.params])
        if base.params.get(k, _ABSENT) != new.params.get(k, _ABSENT)
    ]
    if not keys:
        return ["No params changed."]
    lines = [f"| param | {base.rev.label} | {new.rev.label} |", "|---|---|---|"]
    for k in keys:
        old, new_value = base.params.get(k, _ABSENT), new.params.get(k, _ABSENT)
        lines.append(f"| `{k}` | {_param(old)} | {_param(new_value)} |")
    return lines


def metrics_table(path: str, base: Results, new: Results) -> list[str]:
    old, cur = base.metrics.get(path, {}), new.metrics.get(path, {})
    keys = list(dict.fromkeys([*old, *cur]))
    lines = [f"| metric | {base.rev.label} | {new.rev.label} | change |", "|---|---:|---:|---|"]
    for k in keys:
        a, b = old.get(k), cur.get(k)
        lines.append(f"| `{k}` | {_num(a)} | {_num(b)} | {change(k, a, b)} |")
    return lines


def plots_section(base: Results, new: Results, folder: Path, link: str) -> list[str]:
    lines = [f"| plot | {base.rev.label} | {new.rev.label} |", "|---|---|---|"]
    for name in PLOT_FILES:
        cells = []
        for side, res in (("baseline", base), ("target", new)):
            rows = res.plots.get(name)
            if rows is None:
                cells.append(f"missing: `{PLOT_FILES[name][0]}`")
                continue
            ref = None
            if side == "target" and base.plots.get(name) is not None:
                ref = (base.rev.name, base.plots[name])
            png = render.draw(
                folder / f"{name}-{side}.png",
                name,
                rows,
                res.rev.label,
                res.evaluate.get("threshold"),
                ref,
            )
            cells.append(f"![{render.TITLES[name]}, {res.rev.label}]({link}/{png.name})")
        lines.append(f"| {render.TITLES[name]} | {cells[0]} | {cells[1]} |")
    return lines


def gate_section(verdict: Verdict) -> list[str]:
    lines = [
        f"**{verdict.summary()}**",
        "",
        "| rule | measured | limit | result | note |",
        "|---|---:|---|---|---|",
    ]
    for c in verdict.checks:
        value = "n/a" if c.value is None else f"{c.value:.4f}"
        result = {True: "pass", False: "**FAIL**", None: "not checked"}[c.passed]
        limit = "off" if c.limit is None else f"{c.op} {c.limit:g}"
        lines.append(f"| `{c.rule}` ({c.what}) | {value} | {limit} | {result} | {c.note} |")
    return lines


def write(out: Path, base: Results, new: Results, verdict: Verdict) -> Path:
    """Write the report to ``out`` and its PNGs to ``<out stem>-plots/`` beside it."""
    out = Path(out)
    folder = out.parent / f"{out.stem}-plots"
    parts = [
        f"# Sentinelle model report: {new.rev.label} vs {base.rev.label}",
        "",
        headline(base, new, verdict),
        "",
        "## Params changed",
        "",
        *params_table(base, new),
        "",
        "## Metrics (test split, at the model's threshold unless named)",
        "",
        f"`{EVALUATE}`",
        "",
        *metrics_table(EVALUATE, base, new),
        "",
    ]
    for path in METRIC_FILES[1:]:
        absent = [r.rev.label for r in (base, new) if path not in r.metrics]
        parts += [
            f"<details><summary><code>{path}</code> (every test figure)</summary>",
            "",
            *(
                [
                    f"Not at hand for {' and '.join(absent)} (a DVC output: `dvc repro` or "
                    "`dvc pull` there shows it)."
                ]
                if absent
                else metrics_table(path, base, new)
            ),
            "",
            "</details>",
            "",
        ]
    parts += [
        "## Plots",
        "",
        *plots_section(base, new, folder, folder.name),
        "",
        "## Gate",
        "",
        *gate_section(verdict),
        "",
    ]
    missing = [(r.rev.label, m) for r in (base, new) for m in r.missing]
    if missing:
        parts += ["## Missing", ""]
        parts += [f"- {label}: `{m}` not found" for label, m in missing]
        parts.append("")
    parts += [
        f"_Made by `sentinelle report --baseline {base.rev.name} --target {new.rev.name}` from the "
        "committed `dvclive/`, `params.yaml` and `dvc.lock`._",
        "",
    ]
    io.write_text(out, "\n".join(parts))
    log.info("wrote %s and %d plots in %s/", out, len(list(folder.glob("*.png"))), folder)
    return out
