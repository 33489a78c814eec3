"""The edge of every stage script: arguments, logging, params, one-line errors."""

from __future__ import annotations

import argparse
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

