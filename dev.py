#!/usr/bin/env python3
"""One-command set-up and run for Sentinelle (standard library only).

    python3 dev.py pipeline   # create .venv, install pinned requirements, run `dvc repro`
    python3 dev.py test       # create .venv, install pinned dev requirements, run pytest
    python3 dev.py setup      # only create/update .venv
    python3 dev.py s3 start   # (dev venv) start the local S3 server, configure the DVC remote;
                              # also: s3 stop | s3 status | s3 configure --state-dir DIR

Idempotent: the virtual environment is (re)installed only when the requirement
files change (their hash is kept in .venv/.sentinelle-requirements).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".sentinelle-requirements"
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt", "constraints.txt", "pyproject.toml")


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def setup(dev: bool) -> None:
    """Create .venv and install the pinned requirements if they changed."""
    if sys.version_info[:2] != (3, 11):
        say(f"warning: Sentinelle is tested on Python 3.11, this is {sys.version.split()[0]}")
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in REQUIREMENTS)).hexdigest()
    stamp = STAMP.read_text().split() if STAMP.exists() else []
    if stamp[:1] == [digest] and (stamp[1:] == ["dev"] or not dev):
        say(f"{VENV.name} is up to date")
        return
    if not PY.exists():
        say(f"creating virtual environment {VENV}")
        venv.create(VENV, with_pip=True)
    wanted = "requirements-dev.txt" if dev else "requirements.txt"
    say(f"installing {wanted} (pinned by constraints.txt)")
    run(PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", wanted, "-c", "constraints.txt")
    say("installing the `sentinelle` command (pip install -e .)")
    run(PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps", "-e", ".")
    say("compiling the SVM solver (numba; cached in src/sentinelle/__pycache__)")
    run(PY, "-m", "sentinelle.svm.linear")
    STAMP.write_text(f"{digest} {'dev' if dev else 'runtime'}\n")


def env() -> dict[str, str]:
    """The environment for commands in the venv: its bin first on PATH."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["VIRTUAL_ENV"] = str(VENV)
    return e


def pipeline(args: list[str]) -> int:
    setup(dev=False)
    if not (ROOT / ".git").exists():
        say("error: run this in a git clone of the repository (DVC needs git)")
        return 2
    say("running the pipeline: dvc repro " + " ".join(args))
    rc = subprocess.run([str(BIN / "dvc"), "repro", *args], cwd=ROOT, env=env()).returncode
    if rc == 0:
        say("done. Metrics: dvclive/evaluate/metrics.json (`dvc metrics show`)")
        say("plots: dvclive/evaluate/plots/ (`dvc plots show` writes dvc_plots/index.html)")
        say("model: models/model.skops with models/model.json")
    return rc


def test(args: list[str]) -> int:
    setup(dev=True)
    return subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT, env=env()).returncode


def s3(args: list[str]) -> int:
    """The local S3 server of this clone: `python -m sentinelle_tools.s3local ARGS` in the dev venv."""
    setup(dev=True)
    e = env()
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), e.get("PYTHONPATH")]))
    return subprocess.run([str(PY), "-m", "sentinelle_tools.s3local", *args], cwd=ROOT, env=e).returncode


def main() -> int:
    commands = {"pipeline": pipeline, "test": test, "s3": s3}
    if len(sys.argv) < 2 or sys.argv[1] not in (*commands, "setup"):
        print(__doc__.strip())
        return 2
    if sys.argv[1] == "setup":
        setup(dev=True)
        return 0
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
