"""Suite-wide collection rule: tests marked `slow` run only when asked for.

`python3 dev.py test` leaves them out (deselected, counted in the summary). They run when
SENTINELLE_FULL_TESTS=1 (`.ci/run` sets it), when their file or node id is named on the command
line (`pytest tests/test_container.py`), or under any `-m` expression (`-m slow`: only them).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

FULL = "SENTINELLE_FULL_TESTS"
DESELECTED = pytest.StashKey[int]()


def _named_files(config: pytest.Config) -> set[Path]:
    """The test files named on the command line (a file, or a node id in one)."""
    base = config.invocation_params.dir
    named = set()
    for arg in config.args:
        path = (base / arg.split("::")[0]).resolve()
        if path.is_file():
            named.add(path)
    return named


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(FULL) == "1" or config.option.markexpr:
        return
    named = _named_files(config)
    slow = [i for i in items if i.get_closest_marker("slow") and i.path.resolve() not in named]
    if slow:
        config.hook.pytest_deselected(items=slow)
        left_out = {id(i) for i in slow}
        items[:] = [i for i in items if id(i) not in left_out]
    config.stash[DESELECTED] = len(slow)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if config.stash.get(DESELECTED, 0):
        terminalreporter.write_line(
            f"{config.stash[DESELECTED]} slow test(s) left out: {FULL}=1 runs them "
            "(CI does), as does naming their file"
        )


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """A stage run in this process (``stage.run``) installs its SIGINT/SIGTERM handlers and
    remembers signals (``io._stopped``): each test starts from the same state."""
    from sentinelle import io

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    io._stopped.clear()
