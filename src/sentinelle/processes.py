"""Work on the cores a process leaves idle: forked child processes that inherit their inputs.

Forking (not spawning) means a child starts with everything the parent has loaded
(modules, the model, the texts), so only results are pickled. Used by the stages
and by ``text.parallel_map``; results always come back in order, so parallel runs
give the same bytes as serial ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

_TASK: Callable[[int], Any] | None = None  # what forked_map's workers call (inherited)
_IN_WORKER = False  # set in forked_map's workers: their own forked_map calls run serially


def forked_map(function: Callable[[int], Any], n: int, jobs: int, serial: int = 0) -> Iterator[Any]:
    """``function(i)`` for ``i`` in ``range(n)``, in order; from ``serial`` on, computed by
    ``jobs`` forked processes when there are at least two such calls (serially inside a worker)."""
    global _TASK
    yield from (function(i) for i in range(min(serial, n)))
    if n - serial < 2 or jobs < 2 or _IN_WORKER:
        yield from (function(i) for i in range(serial, n))
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    _TASK = function
    try:
        with ProcessPoolExecutor(jobs, mp_context=get_context("fork"), initializer=_enter_worker) as pool:
            yield from pool.map(_call_task, range(serial, n))
    finally:
        _TASK = None


def _enter_worker() -> None:
    global _IN_WORKER
    _IN_WORKER = True


def _call_task(i: int) -> Any:
    assert _TASK is not None
    return _TASK(i)


class Forked:
    """``target(*args)`` computed by a forked child process, e.g. on the core a stage leaves idle.

    For independent work such as drawing a chart (matplotlib takes half a second
    to import). ``result()`` waits for the child and returns its (picklable) value;
    a child that failed fails the stage.
    """

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._name = target.__name__
        # Not a daemon: the child may start its own workers (e.g. forked_map).
        self._child = context.Process(target=_send, args=(send, target, args), name=self._name)
        self._child.start()
        send.close()

    def result(self) -> Any:
        try:
            value = self._receive.recv()
        except EOFError:  # the child died before sending; its traceback is on stderr
            value = None
        self._child.join()
        if self._child.exitcode != 0:
            raise RuntimeError(f"{self._name} failed in its child process (exit code {self._child.exitcode})")
        return value


def _send(connection: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    connection.send(target(*args))
