"""Nothing one kill can break (issue 28): each stage killed mid-run by SIGKILL, SIGINT or
SIGTERM leaves the previous data/, models/ and dvclive/ outputs byte for byte.

Real `dvc repro` in a temporary git repository, real signals sent to its process group (as
Ctrl-C does). Each stage is first timed in an ordinary forced run (which must reproduce the
committed outputs exactly); then, for each signal, a change makes the stage's result differ,
`dvc repro -s -f STAGE` starts, and the group is signalled once the stage's own Python process
has run a given share of that time, or as soon as it starts moving files in (a staged
`.*.tmp` file appears), whichever comes first.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml

from helpers import env, sh

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUTPUT_DIRS = ("data", "models", "dvclive")
STAGES = ("check_params", "bundled_data", "ingest", "preprocess", "train", "evaluate")
SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)  # SIGINT to the group: Ctrl-C
# When each signal lands: (share of the stage's measured run time, or as soon as a staged file
# appears?). Mid-run: while it computes; moving in: as it writes and moves its outputs.
MOMENTS = {"mid-run": (0.4, False), "moving in": (0.9, True)}
ATTEMPTS = 4  # a stage that ends first (the short ones) is tried again, signalled twice as early
POLL = 0.005  # seconds


def _set(path: Path, key: str, value: object) -> None:
    data = yaml.safe_load(path.read_text())
    section, name = key.split(".")
    data[section][name] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# A change after which the stage's completed run would write different outputs (bundled_data
# has no input to change: its rerun is forced).
CHANGES: dict[str, Callable[[Path], None]] = {
    "check_params": lambda repo: _set(repo / "settings.yaml", "evaluate.top_errors", 7),
    "bundled_data": lambda repo: None,
    "ingest": lambda repo: _set(repo / "params.yaml", "ingest.test_size", 0.25),
    "preprocess": lambda repo: _set(repo / "params.yaml", "preprocess.placeholders", True),
    "train": lambda repo: _set(repo / "params.yaml", "train.max_ham_fpr", 0.01),
    "evaluate": lambda repo: _set(repo / "params.yaml", "base.seed", 7),
}


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def outputs(repo: Path) -> dict[str, str]:
    """SHA-256 of every file under the output folders, temporary files aside."""
    found = {}
    for top in OUTPUT_DIRS:
        for path in sorted((repo / top).rglob("*")):
            rel = path.relative_to(repo)
            if path.is_file() and not any(is_temp(Path(part)) for part in rel.parts):
                found[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def temps(repo: Path) -> list[str]:
    return sorted(
        str(p.relative_to(repo))
        for top in OUTPUT_DIRS
        for p in (repo / top).rglob("*")
        if is_temp(p)
    )


def stage_process(dvc: subprocess.Popen[bytes], stage: str) -> psutil.Process | None:
    """The stage's own Python process under `dvc` (not the shell that starts it)."""
    try:
        children = psutil.Process(dvc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if cmdline[1:2] == [f"src/{stage}.py"] and Path(cmdline[0]).name.startswith("python"):
            return child
    return None


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start(repo: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["dvc", "repro", *args],
            cwd=repo,
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, signalled as a terminal would
            # SIGINT as in a terminal's foreground job, even when the tests run in the
            # background (where the shell ignores it, and so would dvc and the stage).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def group_gone(pgid: int, timeout: float = 60) -> None:
    """Wait until no live process is left in the group (zombies aside)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for proc in psutil.process_iter(["status"]):
            try:
                if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    alive.append(proc.pid)
            except (ProcessLookupError, psutil.Error):
                continue
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {pgid} still alive after {timeout} s: {alive}")


def stage_times(repo: Path, log: Path) -> dict[str, float]:
    """Each stage's Python process lifetime in a forced run of the whole pipeline."""
    dvc = start(repo, "-f", log=log)
    times: dict[str, float] = {}
    running: tuple[str, psutil.Process, float] | None = None
    while True:
        done = dvc.poll() is not None
        if running is not None and (done or not alive(running[1])):
            times[running[0]] = time.monotonic() - running[2]
            running = None
        if done:
            break
        if running is None:
            for stage in STAGES:
                if stage not in times and (proc := stage_process(dvc, stage)) is not None:
                    running = (stage, proc, time.monotonic())
                    break
        time.sleep(POLL)
    assert dvc.returncode == 0, log.read_text()
    assert set(times) == set(STAGES), (times, log.read_text())
    return times


class EndedFirst(Exception):
    """The stage ended before its signal."""


def kill_mid_run(
    repo: Path, stage: str, sig: signal.Signals, after: float, watch: bool, log: Path
) -> tuple[str, float]:
    """Start `dvc repro -s -f STAGE` and signal its group once the stage's process has run
    ``after`` seconds or (``watch``) a new staged file appears; returns what triggered it and
    when."""
    earlier = set(temps(repo))  # left by a SIGKILL before
    dvc = start(repo, "-s", "-f", stage, log=log)
    try:
        proc, began = None, 0.0
        while dvc.poll() is None:
            if proc is None:
                proc = stage_process(dvc, stage)
                began = time.monotonic()
            else:
                ran = time.monotonic() - began
                staged = sorted(set(temps(repo)) - earlier) if watch else []
                if ran >= after or staged:
                    if not alive(proc):
                        break  # it ended in the meantime
                    os.killpg(dvc.pid, sig)
                    return (f"staged file {staged[0]}" if staged else "time"), ran
            time.sleep(POLL)
        raise EndedFirst(log.read_text())
    finally:
        dvc.wait(timeout=120)
        group_gone(dvc.pid)


def snapshot(repo: Path) -> dict[Path, bytes]:
    """dvc.lock and dvclive/, with the `cache: false` outputs `dvc checkout` skips (the
    metrics and plots)."""
    files = [repo / "dvc.lock", *(p for p in (repo / "dvclive").rglob("*") if p.is_file())]
    return {path: path.read_bytes() for path in files if not is_temp(path)}


def restore(repo: Path, saved: dict[Path, bytes], before: dict[str, str]) -> None:
    """Back to the first params, dvc.lock and outputs (after a run that completed)."""
    sh("git", "checkout", "--", "params.yaml", "settings.yaml", cwd=repo)
    for path, data in saved.items():
        path.write_bytes(data)
    sh("dvc", "checkout", "--force", cwd=repo)
    assert outputs(repo) == before


def completed(repo: Path, stage: str, saved: dict[Path, bytes], before: dict[str, str]) -> dict:
    """The outputs of the changed stage's run when nothing stops it; the repo is restored."""
    restore(repo, saved, before)
    CHANGES[stage](repo)
    sh("dvc", "repro", "-s", "-f", stage, cwd=repo)
    new = outputs(repo)
    restore(repo, saved, before)
    return new


def test_every_stage_killed_by_any_signal_leaves_the_previous_outputs(
    repo: Path, tmp_path: Path
) -> None:
    """Previous outputs, byte for byte; or, when the signal came as the stage moved its
    outputs in (SIGINT and SIGTERM wait for the last move), the whole new set: never a file
    missing, never old and new files mixed."""
    before = outputs(repo)
    assert any(p.startswith("models/") for p in before) and temps(repo) == []
    times = stage_times(repo, tmp_path / "timing.log")
    assert outputs(repo) == before, "a forced rerun did not reproduce the outputs"
    saved = snapshot(repo)

    report = []
    for stage, moment, sig in itertools.product(STAGES, MOMENTS, SIGNALS):
        share, watch = MOMENTS[moment]
        case = f"{stage} {moment} {sig.name}"
        log = tmp_path / f"{case.replace(' ', '-')}.log"
        earlier = set(temps(repo))
        for attempt in range(ATTEMPTS):
            sh("git", "checkout", "--", "params.yaml", "settings.yaml", cwd=repo)
            CHANGES[stage](repo)
            try:
                delay = share * times[stage] / 2**attempt
                why, at = kill_mid_run(repo, stage, sig, delay, watch, log)
                break
            except EndedFirst as ended:
                assert attempt < ATTEMPTS - 1, f"{stage} always ended first:\n{ended}"
                restore(repo, saved, before)
        after = outputs(repo)
        left = sorted(set(temps(repo)) - earlier)
        outcome = "previous outputs"
        if after != before:
            changed = sorted(
                p for p in before.keys() | after.keys() if before.get(p) != after.get(p)
            )
            assert after == completed(repo, stage, saved, before), (
                f"{case} ({why}, {at:.2f} s in): neither the previous nor the new outputs; "
                f"changed or missing: {changed}\n{log.read_text()}"
            )
            outcome = "the whole new set"
        report.append(
            f"{case}: {at:.2f} s into {times[stage]:.2f} s ({why}, try {attempt + 1}): "
            f"{outcome}, {len(left)} temporary files left"
        )
        # A SIGKILLed stage cannot remove its staged files: .dvcignore keeps them out of
        # every output (`dvc status` below) and the stage's next run removes them.
        assert sig == signal.SIGKILL or not left, (case, left)
    print("\n".join(report))
    # Mostly the previous outputs: the signals land mid-run.
    assert sum("previous" in line for line in report) > len(report) // 2, report
    sh("git", "checkout", "--", "params.yaml", "settings.yaml", cwd=repo)

    status = sh("dvc", "status", "--json", cwd=repo).stdout.strip()
    assert status == "{}", status
    assert ".tmp" not in sh("git", "status", "--porcelain", cwd=repo).stdout
