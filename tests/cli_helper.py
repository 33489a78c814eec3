"""Run the `sentinelle` command of this checkout (``python -m``, src on PYTHONPATH) like
`helpers.sh`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import ROOT, env


def sentinelle(
    *args: str | Path, cwd: Path, check: bool = True, module: str = "sentinelle"
) -> subprocess.CompletedProcess[str]:
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    cmd = [sys.executable, "-m", module, *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=e, text=True, capture_output=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc
