"""The ``fast`` engine: the model of ``modeling.sklearn_engine``, computed for scale.

One public function, ``fit``. Behind it (``modeling.training``): n-gram counts computed once
for every fold and the final fit, written to a count file (``features``); the linear SVM's
problem solved from those counts by a numba kernel (``svm.linear``), in a solver process
from ``training.SOLVER_MIN_TEXTS`` messages; per-message work as Dask tasks for large
corpora (``compute``). It gives the same model as the ``sklearn`` engine up to the solvers'
stopping rule (``tests/test_engines.py``).
"""

from __future__ import annotations

import pandas as pd

from sentinelle.modeling import training
from sentinelle.modeling.fitted import FittedModel
from sentinelle.params import Params

__all__ = ["fit"]


def fit(train: pd.DataFrame, params: Params) -> FittedModel:
    """The model fitted on ``train`` (columns ``text``, ``label``, ``group``) by ``params``,
    with the out-of-fold scores that choose its operating points."""
    return training.train(
        params.train, params.base.seed, train["text"], train["label"], train["group"]
    )
