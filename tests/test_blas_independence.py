"""The model file does not depend on the BLAS kernels of the machine that trains it.

OpenBLAS picks CPU-specific kernels (OPENBLAS_CORETYPE) whose dot products round
differently; anything fitted through BLAS (e.g. scipy's optimisers) then differs in
the last bits, and so would models/model.skops and dvc.lock on another CPU.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, env, sh
from sentinelle.modeling import calibration

# Two kernel families every x86-64 CPU with AVX2 can run.
CORETYPES = ("Haswell", "Nehalem")


def _active_core(coretype: str) -> str | None:
    """The core OpenBLAS reports with OPENBLAS_CORETYPE=``coretype`` (None if it says nothing)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import numpy"],
        env={**env(), "OPENBLAS_CORETYPE": coretype, "OPENBLAS_VERBOSE": "2"},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [
        line
        for line in proc.stdout.splitlines() + proc.stderr.splitlines()
        if line.startswith("Core:")
    ]
    return lines[0].split(":", 1)[1].strip() if lines else None


def _cannot_switch_kernels() -> str | None:
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"OpenBLAS core types {CORETYPES} are x86-64 kernels; this is {platform.machine()}"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if " avx2" not in flags:
        return "the CPU has no AVX2, so the Haswell kernels cannot run here"
    for coretype in CORETYPES:
        if _active_core(coretype) != coretype:
            return (
                f"this numpy/scipy BLAS does not switch kernels with OPENBLAS_CORETYPE={coretype} "
                "(no DYNAMIC_ARCH OpenBLAS)"
            )
    return None


def test_fit_sigmoid_matches_scikit_learn_and_is_rounded() -> None:
    from sklearn.calibration import _sigmoid_calibration

    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.15
    decision = np.where(y, 1.0, -1.0) + rng.normal(0, 0.8, len(y))
    a, b = calibration.fit_sigmoid(decision, y)
    a_ref, b_ref = _sigmoid_calibration(decision, y)
    assert a == pytest.approx(a_ref, rel=1e-5) and b == pytest.approx(b_ref, rel=1e-5, abs=1e-6)
    assert a == float(f"{a:.{calibration.SIGMOID_DIGITS}g}") and b == float(
        f"{b:.{calibration.SIGMOID_DIGITS}g}"
    )
    assert a < 0  # higher decision value -> higher spam probability


@pytest.mark.slow  # train run under each BLAS kernel
def test_train_writes_the_same_bytes_under_different_blas_kernels(tmp_path: Path) -> None:
    reason = _cannot_switch_kernels()
    if reason:
        pytest.skip(reason)
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(ROOT / "settings.yaml", tmp_path / "settings.yaml")
    for stage in ("check_params", "bundled_data", "ingest", "preprocess"):
        sh(sys.executable, f"src/{stage}.py", cwd=tmp_path)
    outputs = {}
    for coretype in CORETYPES:
        proc = subprocess.run(
            [sys.executable, "src/train.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**env(), "OPENBLAS_CORETYPE": coretype},
        )
        assert proc.returncode == 0, proc.stderr
        outputs[coretype] = {
            name: (tmp_path / name).read_bytes()
            for name in ("models/model.skops", "models/model.json")
        }
    first, second = (outputs[c] for c in CORETYPES)
    assert first["models/model.json"] == second["models/model.json"]
    assert first["models/model.skops"] == second["models/model.skops"]
