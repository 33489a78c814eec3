"""Running a plan: queue its ``dvc exp`` runs, keep workers going, wait, and stop them."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinelle.errors import UserError
from sentinelle.experiments.plans import STALL_GRACE, Plan, resolve_paths, set_param

log = logging.getLogger("sentinelle.experiments")


# ------------------------------------------------------------------ dvc/git


def command(
    *args: str, root: Path, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run dvc (from this interpreter's environment) or git in the repo."""
    argv = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    proc = subprocess.run(argv, cwd=root, text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError(
            f"`{' '.join(args)}` failed (exit {proc.returncode}): {detail[-1] if detail else ''}"
        )
    return proc


def start_workers(root: Path, jobs: int) -> None:
    """``dvc queue start -j N``; its output goes to files, not pipes: the detached
    workers inherit them, and a pipe would keep us waiting until they exit."""
    log_dir = root / ".dvc/tmp/exps"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "sentinelle-queue-start.log", "w", encoding="utf-8") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    if proc.returncode != 0:
        tail = (
            (log_dir / "sentinelle-queue-start.log")
            .read_text(encoding="utf-8")
            .strip()
            .splitlines()
        )
        raise UserError(
            f"`dvc queue start -j {jobs}` failed (exit {proc.returncode}): "
            f"{tail[-1] if tail else ''}"
        )


def repo_root() -> Path:
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], text=True, capture_output=True)
    if proc.returncode != 0:
        raise UserError("not inside a git repository: run this from the Sentinelle checkout")
    return Path(proc.stdout.strip())


def check_dvc_on_path() -> None:
    """Refuse when `dvc` is not on PATH: DVC's queue workers start it from there, and without it
    every worker dies at once."""
    if shutil.which("dvc") is None:
        raise UserError(
            "`dvc` is not on PATH, and DVC's queue workers start it from there: activate the "
            "environment first (`source .venv/bin/activate`)"
        )


def check_clean(root: Path, plan_path: Path | None = None) -> None:
    """Refuse a workspace with uncommitted changes or untracked files (treeverse/dvc#8854).

    The plan file itself may be new or edited: the runs never read it.
    """
    lines = command(
        "git", "status", "--porcelain", "--untracked-files=all", root=root
    ).stdout.splitlines()
    if plan_path is not None:
        plan_rel = (
            Path(plan_path).resolve().relative_to(root.resolve()).as_posix()
            if Path(plan_path).resolve().is_relative_to(root.resolve())
            else None
        )
        lines = [ln for ln in lines if ln[3:] != plan_rel]
    if lines:
        shown = ", ".join(ln.strip() for ln in lines[:5]) + (
            f" (+{len(lines) - 5} more)" if len(lines) > 5 else ""
        )
        raise UserError(
            f"refusing to queue: {len(lines)} uncommitted change(s) or untracked file(s): {shown}; "
            "queued runs use committed files only and the baseline is the last commit "
            "(treeverse/dvc#8854): commit, `git stash -u`, or .gitignore them first (after a "
            "`dvc exp run`: `git restore params.yaml settings.yaml dvc.lock dvclive/ && "
            "dvc checkout`)"
        )


def check_outputs_cached(root: Path) -> None:
    """Refuse when the committed pipeline outputs are not in the DVC cache (a fresh clone).

    A queued run loads the committed outputs' objects of the stages it does not rerun;
    missing ones fail the run with "failed to load directory" (or ask the remote for
    them). `dvc pull` or `dvc repro` first.
    """
    status = json.loads(command("dvc", "status", "--json", root=root).stdout or "{}")
    missing = sorted(
        path
        for changes in status.values()
        if isinstance(changes, list)
        for change in changes
        if isinstance(change, dict)
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
    """``dvc exp show --json``, retried: it fails now and then while a run's temp folder goes
    away."""
    for attempt in range(attempts):
        proc = command("dvc", "exp", "show", "--json", root=root, check=attempt == attempts - 1)
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
        out[name] = {
            "state": state,
            "rev": rev.get("rev"),
            "data": rev.get("data") or {},
            "log": local.get("log"),
        }
    return out


QUEUE_ROW = re.compile(r"^([0-9a-f]{7,40})\s+(\S+)\s+.*?\s(\w+)\s*$")


def queue_status(root: Path) -> tuple[dict[str, tuple[str, str]], int | None]:
    """``dvc queue status``: task id -> (name, state), and the number of live workers.

    Polled instead of ``dvc exp show``, which is slow and CPU-hungry while runs are
    going and fails now and then as their temp folders vanish. ``None`` workers: unknown.
    """
    proc = command("dvc", "queue", "status", root=root, check=False)
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
    lines = [
        ln.strip()
        for ln in Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    ]
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


def queue_and_wait(
    plan: Plan, root: Path, jobs: int, timeout: float, poll: float, replace: bool
) -> Outcome:
    """Queue the plan's runs, run them with ``jobs`` workers, wait; always stop the workers."""
    head = command("git", "rev-parse", "HEAD", root=root).stdout.strip()
    existing = experiments_of(baseline_row(exp_show(root), head))
    busy = sorted(
        n for n, state in queue_status(root)[0].values() if state in ("queued", "running")
    )
    if busy:
        raise UserError(
            f"the DVC queue is busy ({', '.join(busy[:5])} queued/running): "
            "wait, or `dvc queue kill`/`dvc queue remove --queued`"
        )
    clash = [r.exp for r in plan.runs if r.exp in existing]
    if clash and not replace:
        raise UserError(
            f"experiment(s) {', '.join(clash)} already exist for commit {head[:7]}: "
            "pass --replace, or `dvc exp remove` them"
        )
    if clash:
        log.info("removing previous %s", ", ".join(clash))
        command("dvc", "exp", "remove", *clash, root=root)

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
            run = resolve_paths(run, root)
            sets = [x for k, v in run.overrides.items() for x in ("-S", set_param(k, v))]
            queued.append(run.exp)  # before the call: an interrupt may land after DVC queued it
            command("dvc", "exp", "run", "--queue", "-n", run.exp, *sets, root=root)
        current, _ = queue_status(root)
        tasks = {t: n for t, (n, _) in current.items() if t not in before and n in states}
        if sorted(tasks.values()) != sorted(names):
            raise UserError(
                f"queued {len(names)} run(s) but `dvc queue status` lists {len(tasks)} of them"
            )
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
                        log.warning(
                            "%s %s: %s (log: %s)", name, state, errors[name][1], errors[name][0]
                        )
                    states[name] = state
            done = sum(s == "success" for s in states.values())
            running = sum(s == "running" for s in states.values())
            remaining = sum(s in ("queued", "running") for s in states.values())
            failed = len(names) - done - remaining
            line = (
                f"{plan.name}: {done} done, {failed} failed, {remaining} remaining "
                f"({running} running)"
            )
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
                    raise UserError(
                        f"{plan.name}: queue workers keep stopping with {remaining} run(s) left "
                        "(treeverse/dvc#10562)"
                    )
                restarts += 1
                log.warning(
                    "%d of %d worker(s) alive with %d run(s) queued (treeverse/dvc#10562); "
                    "starting %d more",
                    alive,
                    jobs,
                    waiting,
                    min(jobs - alive, waiting),
                )
                start_workers(root, min(jobs - alive, waiting))
                short_since = time.monotonic()
            if time.monotonic() - last_change > timeout:
                timed_out = True
                log.error(
                    "%s: no run started or finished for %.0f s (--timeout); stopping",
                    plan.name,
                    timeout,
                )
                break
    finally:
        pending = [n for n in queued if states[n] in ("queued", "running")]
        if pending:
            log.warning("cleaning up %d unfinished run(s): %s", len(pending), ", ".join(pending))
            # Queued ones first, so that no worker picks them up; then kill the running ones
            # (`dvc queue remove` refuses a list that holds a running task).
            for verb, state in (("remove", "queued"), ("kill", "running")):
                chosen = [n for n in pending if states[n] == state]
                proc = (
                    command("dvc", "queue", verb, *chosen, root=root, check=False)
                    if chosen
                    else None
                )
                if proc is not None and proc.returncode != 0:
                    log.warning(
                        "`dvc queue %s %s` failed: %s",
                        verb,
                        " ".join(chosen),
                        (proc.stderr.strip().splitlines() or [""])[-1],
                    )
            for n in pending:
                task = next((t for t, m in tasks.items() if m == n), None)
                errors[n] = (
                    task_log(root, task) if task else None,
                    "timed out" if timed_out else "interrupted",
                )
                states[n] = "timed out" if timed_out else "interrupted"
        if workers_started:
            stop_workers(root)
    return Outcome(states, errors, time.monotonic() - started, timed_out)


def stop_workers(root: Path, wait: float = 60) -> None:
    """Stop the queue workers and wait until none is left."""
    command("dvc", "queue", "stop", "--kill", root=root, check=False)
    deadline = time.monotonic() + wait
    while worker_count(root) and time.monotonic() < deadline:
        time.sleep(1)
    if worker_count(root):
        log.warning(
            "queue workers still alive after `dvc queue stop --kill`; see `dvc queue status`"
        )
