"""The ``fast`` engine: the model of ``modeling.sklearn_engine``, computed for scale.

One public function, ``fit(train, params)`` (``training.fit``). Behind it: n-gram counts
computed once for every fold and the final fit (``counting``, ``ngrams``, ``vectorizer``),
written to a count file (``countfile``); the linear SVM's problem solved from those counts
by a numba kernel (``linear``), in a solver process (``solver``) from
``training.SOLVER_MIN_TEXTS`` messages; per-fold TF-IDF for the other classifiers
(``tfidf``, ``fold_features``); per-message work as Dask tasks for large corpora
(``sentinelle.compute``). It gives the same model as the ``sklearn`` engine up to the
solvers' stopping rule (``tests/test_engines.py``). This package is the only place of numba,
count files and solver processes, and of scikit-learn's private API but for two: the
calibrated classifier's parts (``modeling.calibration``) and a run-dependent attribute that
``modeling.persistence`` drops before saving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from sentinelle.modeling.fitted import FittedModel
    from sentinelle.params import Params

__all__ = ["fit"]


def fit(train: pd.DataFrame, params: Params) -> FittedModel:
    """The model fitted on ``train`` (columns ``text``, ``label``, ``group``) by ``params``,
    with the out-of-fold scores that choose its operating points."""
    # Imported here, not at the top: the solver process imports ``fast.linear``, which runs
    # this file first, and must not load scikit-learn and pandas (docs/performance.md).
    from sentinelle.modeling.fast import training

    return training.fit(train, params)
