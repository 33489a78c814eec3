"""Work on the cores a process leaves idle: forked child processes that inherit their inputs.

Forking (not spawning) means a child starts with everything the parent has loaded
(modules, the model, the texts), so only results are pickled. Used by the stages,
the counting and ``parallel_map``; results always come back in order, so parallel runs
give the same bytes as serial ones.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

_task: Callable[[int], Any] | None = None  # in a forked_map worker: what it computes


def forked_map(function: Callable[[int], Any], n: int, jobs: int, serial: int = 0) -> Iterator[Any]:
    """``function(i)`` for ``i`` in ``range(n)``, in order; from ``serial`` on, computed by
    ``jobs`` forked processes when there are at least two such calls (serially inside a worker).

    At most ``2 * jobs`` calls are in flight, so at most that many results wait to be consumed.
    """
    yield from (function(i) for i in range(min(serial, n)))
    if n - serial < 2 or jobs < 2 or _task is not None:
        yield from (function(i) for i in range(serial, n))
        return
    # Forked, the workers inherit ``function`` (initargs are not pickled): closures work.
    context = get_context("fork")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_enter_worker, initargs=(function,)
    ) as pool:
        pending: deque[Future[Any]] = deque()
        for i in range(serial, n):
            pending.append(pool.submit(_call_task, i))
            if len(pending) == 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _enter_worker(function: Callable[[int], Any]) -> None:
    global _task
    _task = function


def _call_task(i: int) -> Any:
    assert _task is not None
    return _task(i)


class Forked:
    """``target(*args)`` computed by a forked child process, e.g. on the core a stage leaves idle.

    For independent work such as drawing a chart (matplotlib takes half a second
    to import). ``result()`` waits for the child and returns its (picklable) value;
    a child that failed fails the stage.
    """

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        context = get_context("fork")
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
            raise RuntimeError(
                f"{self._name} failed in its child process (exit code {self._child.exitcode})"
            )
        return value


def _send(connection: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    connection.send(target(*args))


# Below this many texts, starting worker processes costs more than it saves.
PARALLEL_MIN = 20_000


def parallel_map(func: Any, texts: Iterable[str], jobs: int | None = None) -> list[str]:
    """``[func(t) for t in texts]``, over ``jobs`` forked processes (default: every core)
    for ``PARALLEL_MIN`` texts or more; contiguous chunks, joined in order, so the
    result is the same as the serial one."""
    texts = texts if isinstance(texts, list) else list(texts)
    jobs = min(jobs or os.cpu_count() or 1, max(1, len(texts) // PARALLEL_MIN))
    n_chunks = jobs * 4 if jobs > 1 else 1
    bounds = [
        (len(texts) * i // n_chunks, len(texts) * (i + 1) // n_chunks) for i in range(n_chunks)
    ]
    parts = forked_map(
        lambda i: [func(t) for t in texts[bounds[i][0] : bounds[i][1]]], n_chunks, jobs
    )
    return [out for part in parts for out in part]
