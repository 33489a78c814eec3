"""The test command's rule (tests/conftest.py): slow tests run only when asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

TESTS = """
import pytest

@pytest.mark.slow
def test_slow():
    pass

def test_fast():
    pass
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text((ROOT / "tests/conftest.py").read_text())
    (tmp_path / "test_a.py").write_text(TESTS)
    (tmp_path / "test_b.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\nmarkers = slow\n")
    return tmp_path


def pytest_in(suite: Path, *args: str, full: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SENTINELLE_FULL_TESTS"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a plain pytest starts in a fraction of the time
    if full:
        env["SENTINELLE_FULL_TESTS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_slow_tests_are_left_out_by_default_and_counted(suite: Path) -> None:
    out = pytest_in(suite)
    assert "2 passed, 2 deselected" in out
    assert "2 slow test(s) left out: SENTINELLE_FULL_TESTS=1 runs them" in out


@pytest.mark.parametrize(
    ("args", "full", "expected"),
    [
        ((), True, "4 passed"),  # CI
        (("test_a.py",), False, "2 passed"),  # a file named: its slow tests too
        (("test_a.py::test_slow",), False, "1 passed"),
        (("test_a.py", "test_b.py::test_fast"), False, "3 passed"),
        (("-m", "slow"), False, "2 passed, 2 deselected"),  # -m decides alone
    ],
)
def test_slow_tests_run_when_asked(
    suite: Path, args: tuple[str, ...], full: bool, expected: str
) -> None:
    out = pytest_in(suite, *args, full=full)
    assert expected in out and "left out" not in out
