"""Comparing a plan's results: flat metrics and params, the table, the written report."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

from sentinelle.errors import UserError
from sentinelle.experiments import plots_report
from sentinelle.experiments.plans import RESULTS_DIR, Plan
from sentinelle.experiments.runner import Outcome, baseline_row, command, exp_show, experiments_of
from sentinelle.production.review.results import flatten

log = logging.getLogger("sentinelle.experiments")


# --------------------------------------------------------------- comparison


def flat_metrics(data: dict[str, Any]) -> dict[str, Any]:
    """All metrics of one revision, named as `dvc exp show` names them (``obfuscated.recall``);
    a name in two files gets its folder as prefix."""
    files = {path: flatten(f.get("data") or {}) for path, f in (data.get("metrics") or {}).items()}
    counts: dict[str, int] = {}
    for values in files.values():
        for k in values:
            counts[k] = counts.get(k, 0) + 1
    out: dict[str, Any] = {}
    for path, values in files.items():
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k if counts[k] == 1 else f"{Path(path).parent.name}/{k}"] = v
    return out


def flat_params(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix.rstrip(".")] = node

    for f in (data.get("params") or {}).values():
        walk("", f.get("data") or {})
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def comparison(plan: Plan, root: Path, outcome: Outcome | None = None) -> tuple[str, list[str]]:
    """The markdown comparison table and the metric names it is sorted by."""
    head = command("git", "rev-parse", "HEAD", root=root).stdout.strip()
    row = baseline_row(exp_show(root), head)
    exps = experiments_of(row)
    base_metrics = flat_metrics(row.get("data") or {})
    records = []
    for run in plan.runs:
        e = exps.get(run.exp)
        state = (outcome.states.get(run.exp) if outcome else None) or (
            e["state"] if e else "missing"
        )
        ok = state == "success" and e is not None
        records.append(
            (
                run.exp,
                state,
                flat_params(e["data"]) if ok else {},
                flat_metrics(e["data"]) if ok else {},
            )
        )
    metric_names = list(base_metrics)
    for _, _, _, m in records:
        metric_names += [k for k in m if k not in metric_names]
    sort_keys = [k for k in plan.sort_by if k.lstrip("-") in metric_names]
    missing = [k for k in plan.sort_by if k.lstrip("-") not in metric_names]
    if missing:
        log.warning(
            "sort metric(s) %s not found; metrics are: %s",
            ", ".join(missing),
            ", ".join(metric_names),
        )
    ordered = [k.lstrip("-") for k in sort_keys] + [
        k for k in metric_names if k not in {s.lstrip("-") for s in sort_keys}
    ]

    def key(rec: tuple[str, str, dict[str, Any], dict[str, Any]]) -> tuple:
        _, state, _, m = rec
        vals = []
        for k in sort_keys:
            v = m.get(k.lstrip("-"))
            v = (
                -math.inf
                if v is None
                else (v if k.startswith("-") else -v)
                if isinstance(v, (int, float))
                else -math.inf
            )
            vals.append(v if v != -math.inf else math.inf)
        return (state != "success", *vals)

    records.sort(key=key)
    base_params = flat_params(row.get("data") or {})
    rows = [
        [
            f"**baseline** ({head[:7]})",
            *(base_params.get(k) for k in plan.varied),
            *(base_metrics.get(k) for k in ordered),
        ]
    ]
    for name, state, p, m in records:
        overrides = next(r.overrides for r in plan.runs if r.exp == name)
        rows.append(
            [
                name if state == "success" else f"{name} ({state})",
                *(p.get(k, overrides.get(k, base_params.get(k))) for k in plan.varied),
                *((m.get(k) for k in ordered) if m else [""] * len(ordered)),
            ]
        )
    header = ["experiment", *plan.varied, *ordered]
    # Columns equal in every row say nothing about the comparison: listed below instead.
    sort_cols = {k.lstrip("-") for k in sort_keys}
    same = [
        i
        for i in range(1, len(header))
        if header[i] not in sort_cols and len({repr(r[i]) for r in rows if r[i] != ""}) == 1
    ]
    keep = [
        i
        for i in range(len(header))
        if i not in same and (i == 0 or not plan.columns or header[i] in plan.columns)
    ]
    same = [i for i in same if not plan.columns or header[i] in plan.columns]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    for r in rows:
        cells = [
            r[i] if i == 0 or header[i] in plan.varied else _fmt(r[i]) if r[i] != "" else ""
            for i in keep
        ]
        lines.append(
            "| "
            + " | ".join(
                _fmt(c) if isinstance(c, (list, tuple)) or c is None else str(c) for c in cells
            )
            + " |"
        )
    notes = []
    if same:
        shown = (
            str(rows[0][i])
            if header[i] in plan.varied and not isinstance(rows[0][i], (list, tuple))
            else _fmt(rows[0][i])
            for i in same
        )
        notes.append(
            "Same in every row: "
            + ", ".join(f"{header[i]} = {v}" for i, v in zip(same, shown, strict=True))
            + "."
        )
    if outcome:
        for name, (path, err) in outcome.errors.items():
            notes.append(f"- `{name}` {outcome.states.get(name)}: {err} (log: `{path}`)")
    table = "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "")
    return table, sort_keys


def write_report(
    plan: Plan,
    table: str,
    sort_keys: list[str],
    root: Path,
    outcome: Outcome | None,
    jobs: int | None,
) -> Path:
    out = root / RESULTS_DIR / f"{plan.name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    head = command("git", "rev-parse", "--short", "HEAD", root=root).stdout.strip()
    parts = [f"# Experiment plan `{plan.name}`", ""]
    if plan.description:
        parts += [plan.description, ""]
    parts.append(
        f"Baseline: commit `{head}`. Sorted by {', '.join(sort_keys) or 'name'} (best first)."
    )
    if outcome:
        parts.append(f"Ran with {jobs} worker(s) in {outcome.seconds:.0f} s.")
    parts += ["", table, ""]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out


def make_report(
    plan: Plan, root: Path, out: Path | None, check: bool, docs_image: Path | None
) -> int:
    """Render the plan's successful experiments and the baseline with `dvc plots diff`."""
    head = command("git", "rev-parse", "--short", "HEAD", root=root).stdout.strip()
    exps = experiments_of(
        baseline_row(exp_show(root), command("git", "rev-parse", "HEAD", root=root).stdout.strip())
    )
    revs = [r.exp for r in plan.runs if exps.get(r.exp, {}).get("state") == "success"]
    if not revs:
        raise UserError(
            f"{plan.path}: no successful experiment of this plan for commit {head}: run it first"
        )
    out = out or root / RESULTS_DIR / f"{plan.name}-plots"
    page = plots_report.render(
        [head, *revs], out, root, f"Sentinelle: {plan.name} vs baseline {head}"
    )
    log.info("wrote %s (%d experiments + baseline %s)", page, len(revs), head)
    if not check:
        return 0
    png = out / "screenshot.png"
    result = plots_report.check(page, png)
    log.info(
        "chromium: %d of %d plots rendered, %.1f %% of the screenshot drawn: %s",
        result.rendered,
        result.plots,
        100 * result.ink,
        png,
    )
    if docs_image:
        plots_report.shrink(png, docs_image)
        log.info("docs image: %s", docs_image)
    if not result.ok:
        sys.stderr.write(
            f"experiments: error: {page}: only {result.rendered} of {result.plots} "
            f"plots rendered ({100 * result.ink:.1f} % ink)\n"
        )
        return 1
    return 0
