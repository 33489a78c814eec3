"""sentinelle.modeling.persistence.skops_io: skops without its list of every scikit-learn
estimator."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


def test_skops_imports_without_importing_every_scikit_learn_estimator() -> None:
    code = """
import sys
import sklearn.utils
before = sklearn.utils.all_estimators
from sentinelle.modeling.persistence import skops_io
sio = skops_io()
assert sio.__name__ == "skops.io" and callable(sio.load) and callable(sio.dump)
assert sklearn.utils.all_estimators is before  # put back
# skops' own default list would import every estimator module, e.g. these:
print([m in sys.modules for m in ("sklearn.semi_supervised", "sklearn.gaussian_process", \
"sklearn.cross_decomposition")])
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[False, False, False]"
