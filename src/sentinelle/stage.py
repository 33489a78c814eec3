"""The edge of every stage script: arguments, logging, params, one-line errors."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from sentinelle import collector, compute, io
from sentinelle.errors import UserError
from sentinelle.params import DEFAULT_PARAMS, Params, load

log = logging.getLogger("sentinelle")


def run(main: Callable[[Params], None], name: str, description: str) -> None:
    """Parse ``--params``/``--verbose``, validate params, call ``main``, map errors to exit codes.

    A ``UserError`` becomes one line on stderr and exit code 2 (a traceback only
    with ``--verbose``); params are validated before ``main`` can touch any output.
    SIGTERM, like SIGINT, raises (``io.stop_on_signals``), so a stopped stage removes its
    staged outputs (``io.outputs``) and leaves the previous ones.

    The objects the imports created are frozen out of the cyclic garbage collector, which
    also runs less often (``collector.relax``), and everything is frozen again before exit: the
    collector would otherwise walk, again and again, the hundreds of thousands of objects
    the libraries create as they are imported, and once more at exit. A stage's own memory is arrays
    and strings, freed by reference counting (the gain: docs/performance.md);
    ``tests/test_stages.py`` checks it is in force.
    """
    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    dask = parser.add_argument_group("where per-message work runs (override the compute params)")
    dask.add_argument(
        "--scheduler", help="none | local | a Dask scheduler address (tcp://host:8786)"
    )
    dask.add_argument("--workers", type=int, help="local: worker processes")
    dask.add_argument("--memory-per-worker", help="local: memory limit of each worker (e.g. 4GiB)")
    args = parser.parse_args()
    flags = {"scheduler": args.scheduler, "workers": args.workers}
    flags["memory_per_worker"] = args.memory_per_worker
    given = {k: v for k, v in flags.items() if v is not None}
    overrides = {"compute": given} if given else None
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"{name}: %(message)s",
        stream=sys.stderr,
    )
    io.stop_on_signals()
    collector.relax()  # what is imported so far is permanent: no collection will walk it
    try:
        params = load(args.params, overrides)
        with compute.session(params.compute):  # a Dask cluster started by the stage stops here
            main(params)
        gc.freeze()  # nor at exit (Python's final collection)
    except UserError as exc:
        if args.verbose:
            raise
        sys.stderr.write(f"{name}: error: {exc}\n")
        sys.exit(2)
