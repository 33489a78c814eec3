"""The edge of every stage script: arguments, logging, params, one-line errors."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from sentinelle.errors import UserError
from sentinelle.params import DEFAULT_PARAMS, Params, load

log = logging.getLogger("sentinelle")


def run(main: Callable[[Params], None], name: str, description: str) -> None:
    """Parse ``--params``/``--verbose``, validate params, call ``main``, map errors to exit codes.

    A ``UserError`` becomes one line on stderr and exit code 2 (a traceback only
    with ``--verbose``); params are validated before ``main`` can touch any output.

    Python's cyclic garbage collector is off while the stage runs. A stage is a
    short batch job whose memory is arrays and strings, freed by reference counting
    (it leaves about a thousand objects in cycles, at 5K messages as at 100K); the
    collector would only walk, again and again, the hundreds of thousands of
    objects the libraries create as they are imported, and once more at exit:
    about 0.9 s of a 5.5K-message pipeline (docs/performance.md).
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
    gc.freeze()  # what is imported so far is permanent: no collection will walk it
    gc.disable()
    try:
        main(load(args.params))
        gc.freeze()  # nor at exit (Python's final collection)
    except UserError as exc:
        if args.verbose:
            raise
        sys.stderr.write(f"{name}: error: {exc}\n")
        sys.exit(2)


