"""sentinelle.processes.forked_map: ordered results from forked workers, serial when nested."""

from __future__ import annotations

import os

from sentinelle.processes import forked_map


def _pid_and_square(i: int) -> tuple[int, int]:
    return os.getpid(), i * i


def _inner_pids(i: int) -> set[int]:
    # a forked_map inside a worker runs serially, in that worker
    return {pid for pid, _ in forked_map(_pid_and_square, 4, jobs=2)} | {os.getpid()}


def test_forked_map_keeps_order_and_runs_after_serial_in_workers() -> None:
    out = list(forked_map(_pid_and_square, 12, jobs=2, serial=3))
    assert [square for _, square in out] == [i * i for i in range(12)]
    assert {pid for pid, _ in out[:3]} == {os.getpid()}  # the first `serial` calls: here
    assert os.getpid() not in {pid for pid, _ in out[3:]}  # the rest: in workers


def test_forked_map_is_serial_with_one_job_or_inside_a_worker() -> None:
    assert {pid for pid, _ in forked_map(_pid_and_square, 5, jobs=1)} == {os.getpid()}
    for pids in forked_map(_inner_pids, 2, jobs=2):
        assert len(pids) == 1 and os.getpid() not in pids
