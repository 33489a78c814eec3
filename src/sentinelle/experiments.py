"""Experiment plans: validate, queue, run and compare named sets of ``dvc exp`` runs.

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
``PYTHONPATH=src python -m sentinelle.experiments``)::

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

import argparse
import copy
import dataclasses
import decimal
import fnmatch
import itertools
import json
import logging
import math
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
        raise UserError(f"{where}: name {name!r} is invalid: must match {NAME_RE.pattern} (lower case, digits, . _ -)")
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


def load_plan(path: Path, extra: dict[str, Any] | None = None, sort_by: tuple[str, ...] | None = None) -> Plan:
    """Read a plan file; ``extra`` overrides (``-S``) apply to every run. Not yet validated."""
    try:
        data = schema.load_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read plan: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a plan must be a mapping with 'runs' and/or 'grid'")
    unknown = sorted(set(data) - PLAN_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown plan key {unknown[0]!r}; allowed: {', '.join(sorted(PLAN_KEYS))}")
    plan_name = _check_name(Path(path).stem, str(path))
    common = _mapping(data.get("params"), f"{path}: 'params'")
    compare = _mapping(data.get("compare"), f"{path}: 'compare'")
    entries: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(data.get("runs") or []):
        if not isinstance(item, dict) or set(item) - {"name", "params"}:
            raise UserError(f"{path}: runs[{i}] must be a mapping with 'name' and 'params', got {item!r}")
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
                raise UserError(f"{where}: {key} = {values!r} is invalid: a grid axis must be a non-empty list of values")
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
    return Plan(Path(path), plan_name, str(data.get("description") or "").strip(), runs, sort, varied)


def select(plan: Plan, only: list[str]) -> Plan:
    """Keep the runs whose name (or experiment name) matches one of the ``only`` patterns."""
    if not only:
        return plan
    runs = [r for r in plan.runs if any(fnmatch.fnmatchcase(r.name, p) or fnmatch.fnmatchcase(r.exp, p) for p in only)]
    if not runs:
        raise UserError(f"{plan.path}: --only {' '.join(only)} matches no run; runs: {', '.join(r.name for r in plan.runs)}")
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
    base = schema.load_yaml(Path(params_path).read_text(encoding="utf-8"))
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
            raise UserError(f"{plan.path}: run '{run.name}': {str(exc).removeprefix(': ')}") from None


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


def _resolve_paths(run: Run, root: Path) -> Run:
    overrides = dict(run.overrides)
    for key in PATH_PARAMS:
        value = overrides.get(key)
        if isinstance(value, str) and value.startswith("../"):
            overrides[key] = str((root / value).resolve())
            log.info("%s: %s=%s is outside the repo; queued as %s", run.exp, key, value, overrides[key])
    return Run(run.name, run.exp, overrides)


# ------------------------------------------------------------------ dvc/git


def _cmd(*args: str, root: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run dvc (from this interpreter's environment) or git in the repo."""
    argv = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    proc = subprocess.run(argv, cwd=root, text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError(f"`{' '.join(args)}` failed (exit {proc.returncode}): {detail[-1] if detail else ''}")
    return proc


def start_workers(root: Path, jobs: int) -> None:
    """``dvc queue start -j N``; its output goes to files, not pipes: the detached
    workers inherit them, and a pipe would keep us waiting until they exit."""
    log_dir = root / ".dvc/tmp/exps"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "sentinelle-queue-start.log", "w", encoding="utf-8") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)],
            cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=300,
        )
    if proc.returncode != 0:
        tail = (log_dir / "sentinelle-queue-start.log").read_text(encoding="utf-8").strip().splitlines()
        raise UserError(f"`dvc queue start -j {jobs}` failed (exit {proc.returncode}): {tail[-1] if tail else ''}")


def repo_root() -> Path:
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], text=True, capture_output=True)
    if proc.returncode != 0:
        raise UserError("not inside a git repository: run this from the Sentinelle checkout")
    return Path(proc.stdout.strip())


def check_clean(root: Path, plan_path: Path | None = None) -> None:
    """Refuse a workspace with uncommitted changes or untracked files (treeverse/dvc#8854).

    The plan file itself may be new or edited: the runs never read it.
    """
    lines = _cmd("git", "status", "--porcelain", "--untracked-files=all", root=root).stdout.splitlines()
    if plan_path is not None:
        plan_rel = Path(plan_path).resolve().relative_to(root.resolve()).as_posix() if Path(plan_path).resolve().is_relative_to(root.resolve()) else None
        lines = [ln for ln in lines if ln[3:] != plan_rel]
    if lines:
        shown = ", ".join(ln.strip() for ln in lines[:5]) + (f" (+{len(lines) - 5} more)" if len(lines) > 5 else "")
        raise UserError(
            f"refusing to queue: {len(lines)} uncommitted change(s) or untracked file(s): {shown}; "
            "queued runs use committed files only and the baseline is the last commit "
            "(treeverse/dvc#8854): commit, `git stash -u`, or .gitignore them first"
        )


def check_outputs_cached(root: Path) -> None:
    """Refuse when the committed pipeline outputs are not in the DVC cache (a fresh clone).

    A queued run whose stage is restored from the run cache loads the committed
    outputs' objects; missing ones fail the run with "failed to load directory"
    (or ask the remote for them). `dvc pull` or `dvc repro` first.
    """
    status = json.loads(_cmd("dvc", "status", "--json", root=root).stdout or "{}")
    missing = sorted(
        path
        for changes in status.values() if isinstance(changes, list)
        for change in changes if isinstance(change, dict)
        for path, state in change.get("changed outs", {}).items()
        if state in ("deleted", "not in cache")
    )
    if missing:
        raise UserError(
            f"refusing to queue: the committed pipeline outputs are not in this workspace "
            f"({', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}); queued runs restore "
            "stages from them: run `dvc pull` (or `dvc repro`) first"
        )


def exp_show(root: Path, attempts: int = 3) -> list[dict[str, Any]]:
    """``dvc exp show --json``, retried: it fails now and then while a run's temp folder goes away."""
    for attempt in range(attempts):
        proc = _cmd("dvc", "exp", "show", "--json", root=root, check=attempt == attempts - 1)
        if proc.returncode == 0:
            return json.loads(proc.stdout or "[]")
        time.sleep(2)
    raise AssertionError("unreachable")


def baseline_row(rows: list[dict[str, Any]], head: str) -> dict[str, Any]:
    for row in rows:
        if row.get("rev") == head:
            return row
    raise UserError(f"`dvc exp show --json` has no row for HEAD {head[:7]}")


def experiments_of(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Name -> {state, rev, data, log, error} for the experiments of a baseline row."""
    out: dict[str, dict[str, Any]] = {}
    for exp in row.get("experiments") or []:
        name = exp.get("name")
        rev = (exp.get("revs") or [{}])[0]
        executor = exp.get("executor") or {}
        local = executor.get("local") or {}
        state = executor.get("state") or ("failed" if rev.get("error") else "success")
        out[name] = {"state": state, "rev": rev.get("rev"), "data": rev.get("data") or {}, "log": local.get("log")}
    return out


QUEUE_ROW = re.compile(r"^([0-9a-f]{7,40})\s+(\S+)\s+.*?\s(\w+)\s*$")


def queue_status(root: Path) -> tuple[dict[str, tuple[str, str]], int | None]:
    """``dvc queue status``: task id -> (name, state), and the number of live workers.

    Polled instead of ``dvc exp show``, which is slow and CPU-hungry while runs are
    going and fails now and then as their temp folders vanish. ``None`` workers: unknown.
    """
    proc = _cmd("dvc", "queue", "status", root=root, check=False)
    tasks: dict[str, tuple[str, str]] = {}
    for line in proc.stdout.splitlines():
        m = QUEUE_ROW.match(line.strip())
        if m and m.group(1) != "Task":
            tasks[m.group(1)] = (m.group(2), m.group(3).lower())
    w = re.search(r"Worker status:\s*(\d+) active,\s*(\d+) idle", proc.stdout + proc.stderr)
    return tasks, (int(w.group(1)) + int(w.group(2)) if w else None)


def worker_count(root: Path) -> int:
    return queue_status(root)[1] or 0


def task_log(root: Path, task: str) -> str | None:
    """The log file DVC keeps for a queued run (what ``dvc queue logs`` prints)."""
    hits = sorted((root / ".dvc/tmp/exps/run").glob(f"{task}*/*.out"))
    return str(hits[0]) if hits else None


def error_line(log_path: str | None) -> str:
    """The most telling line of a run's log: a stage's ``<stage>: error: ...`` or DVC's ERROR."""
    if not log_path or not Path(log_path).is_file():
        return "(no log)"
    lines = [ln.strip() for ln in Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()]
    for pattern in (r"^\w+: error: ", r"^ERROR: ", r"Error"):
        hits = [ln for ln in lines if re.search(pattern, ln)]
        if hits:
            return hits[0] if pattern == r"^\w+: error: " else hits[-1]
    tail = [ln for ln in lines if ln]
    return tail[-1] if tail else "(empty log)"


# ------------------------------------------------------------------ the run


@dataclass
class Outcome:
    states: dict[str, str]
    errors: dict[str, tuple[str | None, str]]  # exp -> (log path, error line)
    seconds: float
    timed_out: bool = False


def queue_and_wait(plan: Plan, root: Path, jobs: int, timeout: float, poll: float, replace: bool) -> Outcome:
    """Queue the plan's runs, run them with ``jobs`` workers, wait; always stop the workers."""
    head = _cmd("git", "rev-parse", "HEAD", root=root).stdout.strip()
    existing = experiments_of(baseline_row(exp_show(root), head))
    busy = sorted(n for n, state in queue_status(root)[0].values() if state in ("queued", "running"))
    if busy:
        raise UserError(f"the DVC queue is busy ({', '.join(busy[:5])} queued/running): wait, or `dvc queue kill`/`dvc queue remove --queued`")
    clash = [r.exp for r in plan.runs if r.exp in existing]
    if clash and not replace:
        raise UserError(
            f"experiment(s) {', '.join(clash)} already exist for commit {head[:7]}: "
            "pass --replace, or `dvc exp remove` them"
        )
    if clash:
        log.info("removing previous %s", ", ".join(clash))
        _cmd("dvc", "exp", "remove", *clash, root=root)

    names = [r.exp for r in plan.runs]
    started = time.monotonic()
    before, _ = queue_status(root)
    tasks: dict[str, str] = {}  # task id -> experiment name
    queued: list[str] = []
    states: dict[str, str] = dict.fromkeys(names, "queued")
    errors: dict[str, tuple[str | None, str]] = {}
    workers_started = timed_out = False
    try:
        for run in plan.runs:
            run = _resolve_paths(run, root)
            sets = [x for k, v in run.overrides.items() for x in ("-S", f"{k}={hydra_value(v)}")]
            queued.append(run.exp)  # before the call: an interrupt may land after DVC queued it
            _cmd("dvc", "exp", "run", "--queue", "-n", run.exp, *sets, root=root)
        current, _ = queue_status(root)
        tasks = {t: n for t, (n, _) in current.items() if t not in before and n in states}
        if sorted(tasks.values()) != sorted(names):
            raise UserError(f"queued {len(names)} run(s) but `dvc queue status` lists {len(tasks)} of them")
        log.info("queued %d run(s) of %s; starting %d worker(s)", len(tasks), plan.name, jobs)
        start_workers(root, jobs)
        workers_started = True
        last_change = short_since = time.monotonic()
        restarts = 0
        shown = ""
        while True:
            time.sleep(poll)
            current, workers = queue_status(root)
            for task, name in tasks.items():
                state = current.get(task, (name, states[name]))[1]
                if state != states[name]:
                    last_change = time.monotonic()
                    if state not in ("queued", "running", "success"):
                        errors[name] = (task_log(root, task), error_line(task_log(root, task)))
                        log.warning("%s %s: %s (log: %s)", name, state, errors[name][1], errors[name][0])
                    states[name] = state
            done = sum(s == "success" for s in states.values())
            running = sum(s == "running" for s in states.values())
            remaining = sum(s in ("queued", "running") for s in states.values())
            failed = len(names) - done - remaining
            line = f"{plan.name}: {done} done, {failed} failed, {remaining} remaining ({running} running)"
            if line != shown:
                log.info("%s", line)
                shown = line
            if remaining == 0:
                break
            # A worker's monitor shuts it down when an `inspect` reply times out (a busy
            # machine), even with runs queued (treeverse/dvc#10562): top the workers up.
            waiting = remaining - running
            alive = max(workers or 0, running)
            if not waiting or alive >= jobs:
                short_since = time.monotonic()
            elif time.monotonic() - short_since > STALL_GRACE:
                if restarts >= 2 * len(names):
                    raise UserError(f"{plan.name}: queue workers keep stopping with {remaining} run(s) left (treeverse/dvc#10562)")
                restarts += 1
                log.warning("%d of %d worker(s) alive with %d run(s) queued (treeverse/dvc#10562); starting %d more",
                            alive, jobs, waiting, min(jobs - alive, waiting))  # fmt: skip
                start_workers(root, min(jobs - alive, waiting))
                short_since = time.monotonic()
            if time.monotonic() - last_change > timeout:
                timed_out = True
                log.error("%s: no run started or finished for %.0f s (--timeout); stopping", plan.name, timeout)
                break
    finally:
        pending = [n for n in queued if states[n] in ("queued", "running")]
        if pending:
            log.warning("cleaning up %d unfinished run(s): %s", len(pending), ", ".join(pending))
            # Queued ones first, so that no worker picks them up; then kill the running ones
            # (`dvc queue remove` refuses a list that holds a running task).
            for verb, state in (("remove", "queued"), ("kill", "running")):
                chosen = [n for n in pending if states[n] == state]
                proc = _cmd("dvc", "queue", verb, *chosen, root=root, check=False) if chosen else None
                if proc is not None and proc.returncode != 0:
                    log.warning("`dvc queue %s %s` failed: %s", verb, " ".join(chosen), (proc.stderr.strip().splitlines() or [""])[-1])
            for n in pending:
                task = next((t for t, m in tasks.items() if m == n), None)
                errors[n] = (task_log(root, task) if task else None, "timed out" if timed_out else "interrupted")
                states[n] = "timed out" if timed_out else "interrupted"
        if workers_started:
            stop_workers(root)
    return Outcome(states, errors, time.monotonic() - started, timed_out)


def stop_workers(root: Path, wait: float = 60) -> None:
    """Stop the queue workers and wait until none is left."""
    _cmd("dvc", "queue", "stop", "--kill", root=root, check=False)
    deadline = time.monotonic() + wait
    while worker_count(root) and time.monotonic() < deadline:
        time.sleep(1)
    if worker_count(root):
        log.warning("queue workers still alive after `dvc queue stop --kill`; see `dvc queue status`")


# --------------------------------------------------------------- comparison


def flat_metrics(data: dict[str, Any]) -> dict[str, Any]:
    """All metrics of one revision, named by key; a name in two files gets its folder as prefix."""
    files = data.get("metrics") or {}
    counts: dict[str, int] = {}
    for f in files.values():
        for k in (f.get("data") or {}):
            counts[k] = counts.get(k, 0) + 1
    out: dict[str, Any] = {}
    for path, f in files.items():
        for k, v in (f.get("data") or {}).items():
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
    head = _cmd("git", "rev-parse", "HEAD", root=root).stdout.strip()
    row = baseline_row(exp_show(root), head)
    exps = experiments_of(row)
    base_metrics = flat_metrics(row.get("data") or {})
    records = []
    for run in plan.runs:
        e = exps.get(run.exp)
        state = (outcome.states.get(run.exp) if outcome else None) or (e["state"] if e else "missing")
        ok = state == "success" and e is not None
        records.append((run.exp, state, flat_params(e["data"]) if ok else {}, flat_metrics(e["data"]) if ok else {}))
    metric_names = list(base_metrics)
    for _, _, _, m in records:
        metric_names += [k for k in m if k not in metric_names]
    sort_keys = [k for k in plan.sort_by if k.lstrip("-") in metric_names]
    missing = [k for k in plan.sort_by if k.lstrip("-") not in metric_names]
    if missing:
        log.warning("sort metric(s) %s not found; metrics are: %s", ", ".join(missing), ", ".join(metric_names))
    ordered = [k.lstrip("-") for k in sort_keys] + [k for k in metric_names if k not in {s.lstrip("-") for s in sort_keys}]

    def key(rec: tuple[str, str, dict[str, Any], dict[str, Any]]) -> tuple:
        _, state, _, m = rec
        vals = []
        for k in sort_keys:
            v = m.get(k.lstrip("-"))
            v = -math.inf if v is None else (v if k.startswith("-") else -v) if isinstance(v, (int, float)) else -math.inf
            vals.append(v if v != -math.inf else math.inf)
        return (state != "success", *vals)

    records.sort(key=key)
    base_params = flat_params(row.get("data") or {})
    rows = [[f"**baseline** ({head[:7]})", *(base_params.get(k) for k in plan.varied), *(base_metrics.get(k) for k in ordered)]]
    for name, state, p, m in records:
        overrides = next(r.overrides for r in plan.runs if r.exp == name)
        rows.append([
            name if state == "success" else f"{name} ({state})",
            *(p.get(k, overrides.get(k, base_params.get(k))) for k in plan.varied),
            *((m.get(k) for k in ordered) if m else [""] * len(ordered)),
        ])
    header = ["experiment", *plan.varied, *ordered]
    # Columns equal in every row say nothing about the comparison: listed below instead.
    sort_cols = {k.lstrip("-") for k in sort_keys}
    same = [i for i in range(1, len(header)) if header[i] not in sort_cols and len({repr(r[i]) for r in rows if r[i] != ""}) == 1]
    keep = [i for i in range(len(header)) if i not in same and (i == 0 or not plan.columns or header[i] in plan.columns)]
    same = [i for i in same if not plan.columns or header[i] in plan.columns]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    for r in rows:
        cells = [r[i] if i == 0 or header[i] in plan.varied else _fmt(r[i]) if r[i] != "" else "" for i in keep]
        lines.append("| " + " | ".join(_fmt(c) if isinstance(c, (list, tuple)) or c is None else str(c) for c in cells) + " |")
    notes = []
    if same:
        shown = (str(rows[0][i]) if header[i] in plan.varied and not isinstance(rows[0][i], (list, tuple)) else _fmt(rows[0][i]) for i in same)
        notes.append("Same in every row: " + ", ".join(f"{header[i]} = {v}" for i, v in zip(same, shown, strict=True)) + ".")
    if outcome:
        for name, (path, err) in outcome.errors.items():
            notes.append(f"- `{name}` {outcome.states.get(name)}: {err} (log: `{path}`)")
    table = "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "")
    return table, sort_keys


def write_report(plan: Plan, table: str, sort_keys: list[str], root: Path, outcome: Outcome | None, jobs: int | None) -> Path:
    out = root / RESULTS_DIR / f"{plan.name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    head = _cmd("git", "rev-parse", "--short", "HEAD", root=root).stdout.strip()
    parts = [f"# Experiment plan `{plan.name}`", ""]
    if plan.description:
        parts += [plan.description, ""]
    parts.append(f"Baseline: commit `{head}`. Sorted by {', '.join(sort_keys) or 'name'} (best first).")
    if outcome:
        parts.append(f"Ran with {jobs} worker(s) in {outcome.seconds:.0f} s.")
    parts += ["", table, ""]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out


def make_report(plan: Plan, root: Path, out: Path | None, check: bool, docs_image: Path | None) -> int:
    """Render the plan's successful experiments and the baseline with `dvc plots diff`."""
    from sentinelle import plots_report

    head = _cmd("git", "rev-parse", "--short", "HEAD", root=root).stdout.strip()
    exps = experiments_of(baseline_row(exp_show(root), _cmd("git", "rev-parse", "HEAD", root=root).stdout.strip()))
    revs = [r.exp for r in plan.runs if exps.get(r.exp, {}).get("state") == "success"]
    if not revs:
        raise UserError(f"{plan.path}: no successful experiment of this plan for commit {head}: run it first")
    out = out or root / RESULTS_DIR / f"{plan.name}-plots"
    page = plots_report.render([head, *revs], out, root, f"Sentinelle: {plan.name} vs baseline {head}")
    log.info("wrote %s (%d experiments + baseline %s)", page, len(revs), head)
    if not check:
        return 0
    png = out / "screenshot.png"
    result = plots_report.check(page, png)
    log.info("chromium: %d of %d plots rendered, %.1f %% of the screenshot drawn: %s", result.rendered, result.plots, 100 * result.ink, png)
    if docs_image:
        plots_report.shrink(png, docs_image)
        log.info("docs image: %s", docs_image)
    if not result.ok:
        sys.stderr.write(f"experiments: error: {page}: only {result.rendered} of {result.plots} plots rendered ({100 * result.ink:.1f} % ink)\n")
        return 1
    return 0


# ---------------------------------------------------------------------- CLI


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python src/experiments.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("run", "validate, queue, run and compare a plan"), ("check", "validate plans only"), ("compare", "print the comparison of a plan's existing experiments"), ("report", "dvc plots diff of a plan's experiments as offline HTML, checked in headless Chromium")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("plans" if name == "check" else "plan", type=Path, nargs="+" if name == "check" else None)
        p.add_argument("-S", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override applied to every run (repeatable)")
        if name != "check":
            p.add_argument("--only", action="append", default=[], metavar="NAME", help="only runs matching NAME (glob; repeatable)")
            p.add_argument("--columns", help="comma-separated params/metrics to show (default: all that differ)")
            p.add_argument("--sort", help="comma-separated metrics to sort by, '-' prefix = lower is better (default: the plan's compare.sort_by, else recall,mcc)")
        if name == "report":
            p.add_argument("--out", type=Path, help="folder for index.html (default experiments/results/<plan>-plots)")
            p.add_argument("--no-check", action="store_true", help="only write the HTML; skip the headless Chromium check")
            p.add_argument("--docs-image", type=Path, help="also save a small copy of the screenshot here")
        if name == "run":
            p.add_argument("-j", "--jobs", type=int, default=1, help="parallel queue workers (default 1)")
            p.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds without a run starting or finishing (default 1800)")
            p.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
            p.add_argument("--replace", action="store_true", help="remove this commit's experiments of the same names first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="experiments: %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C does
    try:
        root = repo_root()
        extra = parse_set(args.sets)
        if args.command == "check":
            for path in args.plans:
                plan = load_plan(path, extra)
                validate(plan, root / schema.DEFAULT_PARAMS)
                log.info("%s: %d run(s) valid", path, len(plan.runs))
            return 0
        sort = tuple(s.strip() for s in args.sort.split(",") if s.strip()) if args.sort else None
        plan = select(load_plan(args.plan, extra, sort), args.only)
        if args.columns:
            plan.columns = tuple(c.strip() for c in args.columns.split(",") if c.strip())
        if args.command == "report":
            return make_report(plan, root, args.out, not args.no_check, args.docs_image)
        outcome = None
        if args.command == "run":
            if args.jobs < 1:
                raise UserError(f"--jobs {args.jobs} is invalid: must be >= 1")
            validate(plan, root / schema.DEFAULT_PARAMS)
            check_clean(root, plan.path)
            check_outputs_cached(root)
            outcome = queue_and_wait(plan, root, args.jobs, args.timeout, args.poll, args.replace)
        table, sort_keys = comparison(plan, root, outcome)
        report = write_report(plan, table, sort_keys, root, outcome, getattr(args, "jobs", None))
        sys.stdout.write(table + "\n")
        log.info("comparison written to %s", report.relative_to(root))
        if outcome:
            failed = [n for n, s in outcome.states.items() if s != "success"]
            log.info("%s: %d of %d run(s) succeeded in %.0f s with %d worker(s)", plan.name, len(outcome.states) - len(failed), len(outcome.states), outcome.seconds, args.jobs)
            if failed:
                for name, (path, err) in outcome.errors.items():
                    log.error("%s %s: %s (log: %s)", name, outcome.states[name], err, path)
                return 1
        return 0
    except UserError as exc:
        sys.stderr.write(f"experiments: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("experiments: interrupted; queued runs removed and workers stopped\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
