"""One side task on the core a stage leaves idle: a forked child that inherits its inputs.

Forking (not spawning) means the child starts with everything the parent has loaded
(modules, the model, the texts), so only the result is pickled. For independent steps
such as drawing a chart while the stage goes on; per-message work that is split into
many pieces runs through ``sentinelle.compute`` (Dask), which runs serially in a child.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing import get_context
from typing import Any


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
        # Not a daemon: the child may start processes of its own.
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
