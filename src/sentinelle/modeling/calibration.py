"""The calibrated linear SVM, built from its parts: all use of scikit-learn's private
calibration classes is in this module (``tests/test_calibration.py`` fails on an upgrade
that breaks it)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.extmath import safe_sparse_dot

# Significant digits kept of the fitted sigmoid's parameters (see fit_sigmoid).
SIGMOID_DIGITS = 8


def fit_sigmoid(decision: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Platt's sigmoid ``P(positive) = 1 / (1 + exp(a * decision + b))``, as scikit-learn fits it.

    Same targets (Platt's prior-smoothed 0/1) and log loss as
    ``sklearn.calibration._sigmoid_calibration``, but minimised by Newton's method to
    machine precision with element-wise numpy sums (no BLAS, no scipy optimiser,
    whose dot products differ in the last bits between BLAS kernels and CPUs) and
    rounded to ``SIGMOID_DIGITS`` significant digits, so the fitted parameters, and
    with them the model file, are the same on every machine.
    """
    f = np.asarray(decision, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n1 = float(np.count_nonzero(y))
    n0 = len(y) - n1
    t = np.where(y, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    scale = max(1.0, float(np.abs(f).max())) if len(f) else 1.0
    f = f / scale

    def loss(a: float, b: float) -> float:
        z = a * f + b  # P = expit(-z)
        return float(np.sum(t * np.logaddexp(0, z) + (1 - t) * np.logaddexp(0, -z)))

    a, b = 0.0, float(np.log((n0 + 1) / (n1 + 1)))
    current = loss(a, b)
    for _ in range(100):
        prob = np.exp(-np.logaddexp(0, a * f + b))
        g = t - prob  # d loss / d z
        w = prob * (1 - prob) + 1e-12
        ga, gb = float(np.sum(g * f)), float(np.sum(g))
        haa, hab, hbb = float(np.sum(w * f * f)), float(np.sum(w * f)), float(np.sum(w))
        det = haa * hbb - hab * hab
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        step = 1.0
        while step > 1e-10:
            candidate = loss(a - step * da, b - step * db)
            if candidate <= current:
                break
            step /= 2
        a, b, current = a - step * da, b - step * db, min(candidate, current)
        if abs(step * da) <= 1e-13 * max(1.0, abs(a)) and abs(step * db) <= 1e-13 * max(
            1.0, abs(b)
        ):
            break
    return float(f"{a / scale:.{SIGMOID_DIGITS}g}"), float(f"{b:.{SIGMOID_DIGITS}g}")


def calibrated_svm(svm: Any, a: float, b: float, cv_folds: int) -> CalibratedClassifierCV:
    """The fitted linear ``svm`` with Platt's sigmoid ``a``, ``b``, as the object scikit-learn's
    ``CalibratedClassifierCV(svm, method="sigmoid", cv=cv_folds, ensemble=False)`` would be
    after its fit (one calibrated classifier: the SVM fitted on everything)."""
    calibrator = _SigmoidCalibration()
    calibrator.a_, calibrator.b_ = a, b
    calibrated = CalibratedClassifierCV(clone(svm), method="sigmoid", cv=cv_folds, ensemble=False)
    calibrated.calibrated_classifiers_ = [
        _CalibratedClassifier(svm, [calibrator], classes=svm.classes_, method="sigmoid")
    ]
    calibrated.classes_ = svm.classes_
    calibrated.n_features_in_ = svm.n_features_in_
    return calibrated


def probability_threshold(model: Pipeline, raw_threshold: float) -> float:
    """The ``spam_scores`` threshold that flags exactly what ``raw_threshold`` flags.

    For the calibrated SVM the raw scale is the SVM decision value and the fitted
    sigmoid maps it (monotonically) to a probability; for every other classifier
    the raw scale already is the probability.
    """
    classifier = model[-1]
    if not isinstance(classifier, CalibratedClassifierCV):
        return float(raw_threshold)
    return float(sigmoid(classifier).predict(np.array([raw_threshold], dtype=np.float64))[0])


def sigmoid(classifier: CalibratedClassifierCV) -> _SigmoidCalibration:
    """The fitted sigmoid of a calibrated SVM (one calibrated classifier: ``ensemble=False``)."""
    [calibrated] = classifier.calibrated_classifiers_
    [calibrator] = calibrated.calibrators
    return calibrator


def base_estimator(classifier: Any) -> Any:
    """The classifier under the calibration, if any (the SVM of a calibrated SVM)."""
    if isinstance(classifier, CalibratedClassifierCV):
        return classifier.calibrated_classifiers_[0].estimator
    return classifier


def calibrated_linear_scores(clf: Any, spam_index: int) -> Any:
    """Spam scores of a sigmoid-calibrated linear classifier, with scikit-learn's arithmetic.

    ``CalibratedClassifierCV.predict_proba`` validates its input some thirty times
    per call (about 2 ms), which is most of the latency of scoring one message. For
    the calibrated linear models the default configuration uses, the same operations
    in the same order are done here directly: the decision function of each fold's
    model, its sigmoid, the clip, the mean. Any other classifier returns None (and
    goes through scikit-learn); tests check that both give identical scores.
    """
    if not (
        type(clf) is CalibratedClassifierCV
        and clf.method == "sigmoid"
        and len(clf.classes_) == 2
        and spam_index == 1
        and all(
            isinstance(c.estimator, LinearClassifierMixin)
            and c.estimator.coef_.shape[0] == 1
            and list(c.estimator.classes_) == list(clf.classes_)
            and len(c.calibrators) == 1
            and type(c.calibrators[0]) is _SigmoidCalibration
            for c in clf.calibrated_classifiers_
        )
    ):
        return None
    folds = [
        (c.estimator.coef_.T, c.estimator.intercept_, c.calibrators[0])
        for c in clf.calibrated_classifiers_
    ]

    def scores(X: Any) -> np.ndarray:
        total = np.zeros(X.shape[0])
        for coef_t, intercept, calibrator in folds:
            decision = (safe_sparse_dot(X, coef_t, dense_output=True) + intercept).reshape(-1)
            spam = expit(-(calibrator.a_ * decision + calibrator.b_))
            spam[(spam > 1.0) & (spam <= 1.0 + 1e-5)] = 1.0
            total += spam
        total /= len(folds)
        return total

    return scores
