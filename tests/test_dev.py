"""dev.py: the interpreter check (one line, exit 2, no .venv), failed installs, finding Pythons."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sentinelle_dev_script", ROOT / "dev.py")
dev = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dev)


@pytest.mark.parametrize("version", [(3, 11, 7), (3, 12, 1), (3, 13, 0)])
def test_supported_pythons_pass(version: tuple[int, int, int]) -> None:
    assert dev.python_problem(version, "cpython") is None


@pytest.mark.parametrize(
    ("version", "implementation", "why"),
    [
        ((3, 10, 13), "cpython", "is too old"),
        ((3, 6, 15), "cpython", "is too old"),
        ((3, 14, 0), "cpython", "is newer than Sentinelle is tested on"),
        ((4, 0, 0), "cpython", "is newer than Sentinelle is tested on"),
        ((3, 11, 9), "pypy", "is not CPython"),
    ],
)
def test_other_pythons_get_one_line_naming_found_supported_and_how(
    version: tuple[int, int, int], implementation: str, why: str
) -> None:
    msg = dev.python_problem(version, implementation)
    assert msg is not None and "\n" not in msg
    assert ".".join(map(str, version)) in msg and why in msg
    assert "3.11, 3.12 and 3.13" in msg
    assert "uv python install 3.13" in msg and "pyenv install 3.13" in msg


def _copy_dev(dest: Path) -> Path:
    dest.mkdir()
    shutil.copy2(ROOT / "dev.py", dest / "dev.py")
    return dest


def test_an_old_python_is_refused_in_one_line_before_any_venv(tmp_path: Path) -> None:
    old = dev.find_python((3, 10))
    if old is None:
        pytest.skip(
            "no Python 3.10 here (python3.10 on PATH or pyenv's versions/3.10.*): "
            "python_problem() is tested alone"
        )
    work = _copy_dev(tmp_path / "copy")
    proc = subprocess.run(
        [old, "dev.py", "pipeline"], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("[dev] error: Python 3.10.") and "is too old" in lines[0]
    assert "3.11, 3.12 and 3.13" in lines[0]
    assert not (work / ".venv").exists()


def test_a_failed_install_is_one_line_and_leaves_no_venv(tmp_path: Path) -> None:
    work = _copy_dev(tmp_path / "copy")
    (work / "requirements.txt").write_text("sentinelle-no-such-package==0.0.0\n")
    for name in ("requirements-dev.txt", "constraints.txt", "pyproject.toml"):
        (work / name).write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PIP_NO_INDEX"] = "1"  # as with no network: nothing to install from
    proc = subprocess.run(
        [sys.executable, "dev.py", "pipeline"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("[dev] error: `.venv/bin/python -m pip install -r requirements.txt")
    assert "failed (exit code 1" in last and "run `dev.py pipeline` again" in last
    assert not (work / ".venv").exists()  # the next run starts afresh


def test_venv_version_reads_venv_and_virtualenv_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "VENV", tmp_path)
    assert dev.venv_version() is None
    (tmp_path / "pyvenv.cfg").write_text(
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n"
    )
    assert dev.venv_version() == "3.12.1"
    (tmp_path / "pyvenv.cfg").write_text(
        "home = /usr/bin\nimplementation = CPython\nversion_info = 3.13.0.final.0\n"
    )
    assert dev.venv_version() == "3.13.0"


def test_find_python_runs_each_candidate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = tmp_path / "python3.99"  # like a pyenv shim of a version that is not enabled
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.99: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    assert dev.find_python((3, 99)) is None
    shim.write_text("#!/bin/sh\necho '3.99 cpython'\n")
    assert dev.find_python((3, 99)) == str(shim)


def test_a_failed_pipeline_says_in_one_line_what_to_do_next(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "setup", lambda dev: None)
    monkeypatch.setattr(
        dev.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1)
    )
    assert dev.pipeline([]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "[dev] error: `dvc repro` failed (exit code 1; the stage's error line is above): fix what "
        "it names (README.md, Troubleshooting) and run `python3 dev.py pipeline` again"
    ]
