"""Experiment plans: named sets of ``dvc exp`` runs, loaded and validated against the params schema.

A plan is a YAML file in ``experiments/`` (the README explains the format)::

    description: what the plan explores
    params: {train.features: word}          # optional, applied to every run
    compare: {sort_by: [recall, mcc]}       # optional, metric names (prefix '-' = lower is better)
    runs:
      - name: logreg
        params: {train.classifier: logreg, train.C: 10}
    grid:                                   # optional; a mapping or a list of them
      name: svm                             # runs svm-<value>-<value>...
      params: {train.C: [0.5, 1, 2]}        # the cartesian product of the value lists

Commands (from the repo root; ``python src/experiments.py`` is the same as
``PYTHONPATH=src python -m sentinelle.experiments.command_line``)::

    python src/experiments.py run experiments/model-zoo.yaml [--jobs 2] [--only NAME] [-S key=value]
    python src/experiments.py check experiments/*.yaml
    python src/experiments.py compare experiments/model-zoo.yaml

``run`` validates every override against the params schema before anything is
queued, refuses a dirty git workspace (queued runs only see committed files,
treeverse/dvc#8854), queues ``<plan>-<run>`` experiments, starts ``-j`` workers,
reports progress, restarts workers that stop with work left (treeverse/dvc#10562),
gives up after ``--timeout`` seconds without progress, and always stops the
workers it started. It prints a comparison table (baseline = the last commit's
result on top) and writes it to ``experiments/results/<plan>.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import decimal
import fnmatch
import itertools
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinelle import params as schema
from sentinelle.errors import UserError

log = logging.getLogger("sentinelle.experiments")


# The headline metrics, best first; '-' prefix = lower is better. A plan's
# `compare.sort_by` or `--sort` replaces them; names missing from the metrics are skipped.
HEADLINE = ("recall", "mcc")
# Params whose value is a path: a relative path that leaves the repo (../shared/...)
# is made absolute, because queued runs execute in .dvc/tmp/exps/<tmp>/, not the repo root.
PATH_PARAMS = ("ingest.source",)
RESULTS_DIR = Path("experiments/results")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
PLAN_KEYS = {"description", "params", "compare", "runs", "grid"}
STALL_GRACE = 30.0  # seconds with runs queued but no worker alive before restarting workers


@dataclass(frozen=True)
class Run:
    name: str  # the run's name in the plan
    exp: str  # the DVC experiment name: <plan>-<run>
    overrides: dict[str, Any]


@dataclass
class Plan:
    path: Path
    name: str
    description: str
    runs: list[Run]
    sort_by: tuple[str, ...] = HEADLINE
    varied: list[str] = field(default_factory=list)  # params keys the plan sets, in order
    columns: tuple[str, ...] = ()  # only these params/metrics in the table (empty: all)


# --------------------------------------------------------------------- plans


def _slug(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "_".join(_slug(v) for v in value)
    if isinstance(value, bool) or value is None:
        text = hydra_value(value)
    elif isinstance(value, (int, float)):
        text = f"{value:g}"
    else:
        text = str(value)
    return re.sub(r"[^a-z0-9.]+", "_", str(text).lower()).strip("_.") or "x"


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UserError(f"{where} must be a mapping of 'section.key: value', got {value!r}")
    return dict(value)


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UserError(
            f"{where}: name {name!r} is invalid: must match {NAME_RE.pattern} "
            "(lower case, digits, . _ -)"
        )
    return name


# The published Sentinelle setup, as a run of the model zoo (one owner: the plan file).
PUBLISHED = (Path("experiments/model-zoo.yaml"), "published-rf")


def run_sections(plan: Path, run: str) -> dict[str, dict[str, Any]]:
    """A plan run's overrides as params sections, e.g. ``{"train": {"C": 1.0}}``."""
    [found] = [r for r in load_plan(plan).runs if r.name == run]
    sections: dict[str, dict[str, Any]] = {}
    for key, value in found.overrides.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    return sections


def load_plan(
    path: Path, extra: dict[str, Any] | None = None, sort_by: tuple[str, ...] | None = None
) -> Plan:
    """Read a plan file; ``extra`` overrides (``-S``) apply to every run. Not yet validated."""
    try:
        data = schema.load_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read plan: {exc.strerror}") from None
    except schema.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a plan must be a mapping with 'runs' and/or 'grid'")
    unknown = sorted(set(data) - PLAN_KEYS)
    if unknown:
        raise UserError(
            f"{path}: unknown plan key {unknown[0]!r}; allowed: {', '.join(sorted(PLAN_KEYS))}"
        )
    plan_name = _check_name(Path(path).stem, str(path))
    common = _mapping(data.get("params"), f"{path}: 'params'")
    compare = _mapping(data.get("compare"), f"{path}: 'compare'")
    entries: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(data.get("runs") or []):
        if not isinstance(item, dict) or set(item) - {"name", "params"}:
            raise UserError(
                f"{path}: runs[{i}] must be a mapping with 'name' and 'params', got {item!r}"
            )
        name = _check_name(item.get("name"), f"{path}: runs[{i}]")
        entries.append((name, _mapping(item.get("params"), f"{path}: run '{name}': 'params'")))
    grids = data.get("grid") or []
    for i, grid in enumerate(grids if isinstance(grids, list) else [grids]):
        where = f"{path}: grid[{i}]"
        if not isinstance(grid, dict) or set(grid) - {"name", "params"} or not grid.get("params"):
            raise UserError(f"{where} must be a mapping with 'name' and 'params' (key: [values])")
        prefix = _check_name(grid.get("name", "grid"), where)
        axes = _mapping(grid["params"], f"{where}: 'params'")
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise UserError(
                    f"{where}: {key} = {values!r} is invalid: "
                    "a grid axis must be a non-empty list of values"
                )
        for combo in itertools.product(*axes.values()):
            name = "-".join([prefix, *(_slug(v) for v in combo)])
            entries.append((name, dict(zip(axes, combo, strict=True))))
    if not entries:
        raise UserError(f"{path}: the plan has no runs (add 'runs' or 'grid')")
    seen: set[str] = set()
    runs = []
    for name, overrides in entries:
        if name in seen:
            raise UserError(f"{path}: run name '{name}' appears twice; run names must be unique")
        seen.add(name)
        runs.append(Run(name, f"{plan_name}-{name}", {**common, **overrides, **(extra or {})}))
    varied = list(dict.fromkeys(k for r in runs for k in r.overrides))
    sort = tuple(sort_by or compare.get("sort_by") or HEADLINE)
    return Plan(
        Path(path), plan_name, str(data.get("description") or "").strip(), runs, sort, varied
    )


def select(plan: Plan, only: list[str]) -> Plan:
    """Keep the runs whose name (or experiment name) matches one of the ``only`` patterns."""
    if not only:
        return plan
    runs = [
        r
        for r in plan.runs
        if any(fnmatch.fnmatchcase(r.name, p) or fnmatch.fnmatchcase(r.exp, p) for p in only)
    ]
    if not runs:
        raise UserError(
            f"{plan.path}: --only {' '.join(only)} matches no run; "
            f"runs: {', '.join(r.name for r in plan.runs)}"
        )
    return dataclasses.replace(plan, runs=runs)


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"'{part}' in '{key}' is not a section")
    node[last] = value


def validate(plan: Plan, params_path: Path = schema.DEFAULT_PARAMS) -> None:
    """Check every run's overrides against the params schema; the first problem is one line."""
    base = schema.read(Path(params_path))
    for run in plan.runs:
        merged = copy.deepcopy(base)
        for key, value in run.overrides.items():
            single = copy.deepcopy(base)
            try:
                _set(single, key, value)
                schema.parse(single, source="")
                _set(merged, key, value)
            except UserError as exc:
                msg = str(exc).removeprefix(": ")
                if not msg.startswith(f"{key} = "):
                    msg = f"{key} = {value!r}: {msg}"
                raise UserError(f"{plan.path}: run '{run.name}': {msg}") from None
        try:
            schema.parse(merged, source="")
        except UserError as exc:
            raise UserError(
                f"{plan.path}: run '{run.name}': {str(exc).removeprefix(': ')}"
            ) from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings (values read as YAML, like ``dvc exp run -S``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"-S {item!r}: expected key=value, e.g. -S train.C=2")
        out[key.strip()] = schema.load_yaml(value) if value else ""
    return out


def hydra_value(value: Any) -> str:
    """A value as ``dvc exp run -S`` (Hydra override grammar) reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Positional with a dot: '1e-05' would be read back as a string.
        text = format(decimal.Decimal(repr(value)), "f")
        return text if "." in text or not math.isfinite(value) else f"{text}.0"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./\-]+", text) and schema.load_yaml(text) == text:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def set_param(key: str, value: Any) -> str:
    """The ``dvc exp run -S`` argument that sets ``key``: ``train.C=2``, or with its file for
    a key of settings.yaml (``settings.yaml:ingest.delimiter=';'``)."""
    file = schema.home(key)
    prefix = "" if file == schema.DEFAULT_PARAMS else f"{file.name}:"
    return f"{prefix}{key}={hydra_value(value)}"


def resolve_paths(run: Run, root: Path) -> Run:
    overrides = dict(run.overrides)
    for key in PATH_PARAMS:
        value = overrides.get(key)
        if isinstance(value, str) and value.startswith("../"):
            overrides[key] = str((root / value).resolve())
            log.info(
                "%s: %s=%s is outside the repo; queued as %s", run.exp, key, value, overrides[key]
            )
    return Run(run.name, run.exp, overrides)
