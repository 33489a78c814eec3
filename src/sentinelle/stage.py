"""The edge of every stage script: arguments, logging, params, one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinelle.errors import UserError
from sentinelle.params import DEFAULT_PARAMS, Params, load

log = logging.getLogger("sentinelle")


def run(main: Callable[[Params], None], name: str, description: str) -> None:
    """Parse ``--params``/``--verbose``, validate params, call ``main``, map errors to exit codes.

    A ``UserError`` becomes one line on stderr and exit code 2 (a traceback only
    with ``--verbose``); params are validated before ``main`` can touch any output.
    """
    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"{name}: %(message)s",
        stream=sys.stderr,
    )
    try:
        main(load(args.params))
    except UserError as exc:
        if args.verbose:
            raise
        sys.stderr.write(f"{name}: error: {exc}\n")
        sys.exit(2)


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
        # Not a daemon: the child may start its own workers (e.g. text.parallel_map).
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
