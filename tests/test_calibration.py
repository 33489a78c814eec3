"""sentinelle.modeling.calibration, the one user of scikit-learn's private calibration classes:
if an upgrade changes them, these tests fail before any model is trained wrongly."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from sentinelle.modeling.calibration import (
    base_estimator,
    calibrated_linear_scores,
    calibrated_svm,
    probability_threshold,
    sigmoid,
)

RNG = np.random.default_rng(0)
X = sp.random(200, 30, density=0.2, random_state=1, format="csr")
y = np.where(X[:, :5].sum(axis=1).A1 + RNG.normal(0, 0.3, 200) > 0.5, "spam", "ham")


def fitted_by_scikit_learn() -> CalibratedClassifierCV:
    return CalibratedClassifierCV(
        LinearSVC(random_state=0), method="sigmoid", cv=3, ensemble=False
    ).fit(X, y)


def test_a_calibrated_svm_built_from_its_parts_predicts_as_scikit_learns_own() -> None:
    theirs = fitted_by_scikit_learn()
    svm, calibrator = base_estimator(theirs), sigmoid(theirs)
    assert isinstance(svm, LinearSVC)
    ours = calibrated_svm(svm, calibrator.a_, calibrator.b_, cv_folds=3)
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert list(ours.classes_) == ["ham", "spam"] and ours.n_features_in_ == 30
    # its parameters are those of scikit-learn's own (saved in the model file)
    assert repr(ours.get_params()) == repr(theirs.get_params())


def test_the_fast_scores_are_scikit_learns_to_the_bit() -> None:
    model = fitted_by_scikit_learn()
    scores = calibrated_linear_scores(model, spam_index=1)
    assert scores is not None  # the fast path recognises scikit-learn's calibrated SVM
    np.testing.assert_array_equal(scores(X), model.predict_proba(X)[:, 1])
    assert calibrated_linear_scores(LinearSVC().fit(X, y), spam_index=1) is None


def test_probability_threshold_flags_what_the_raw_threshold_flags() -> None:
    model = Pipeline([("classifier", fitted_by_scikit_learn())])
    decision = base_estimator(model[-1]).decision_function(X)
    raw = float(np.quantile(decision, 0.7))
    threshold = probability_threshold(model, raw)
    np.testing.assert_array_equal(model.predict_proba(X)[:, 1] >= threshold, decision >= raw)
