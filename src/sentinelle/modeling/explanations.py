"""Why a message got its score: each n-gram's exact share of a linear model's decision.

Every classifier Sentinelle trains except the random forest decides with a linear
function of the TF-IDF vector ``x``: ``decision = x · w + b``, positive towards spam.

- ``linear_svm`` (the SVM under its Platt sigmoid), ``logreg``, ``sgd``: ``w`` and ``b``
  are the model's ``coef_`` and ``intercept_``; ``decision`` is its ``decision_function``
  and the spam score a monotone function of it (sigmoid, logistic, clipped line).
- ``multinomial_nb``, ``complement_nb``: the log-odds ``log P(spam|x) - log P(ham|x)``,
  which naive Bayes computes as ``x · (log θ_spam - log θ_ham)`` plus the difference of
  the class log-priors (``multinomial_nb``) or nothing (``complement_nb``, two classes);
  the spam score is its logistic.

So the contribution of feature ``i`` is ``x_i * w_i``, and the contributions of all the
message's features plus ``b`` add up to ``decision`` (to rounding: tests check 1e-9).
``Explainer.explain`` lists the ``k`` largest either way; the rest is summed up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.svm import LinearSVC

from sentinelle.errors import UserError
from sentinelle.modeling.calibration import base_estimator
from sentinelle.modeling.pipeline import vectorisers
from sentinelle.modeling.spans import TokenSpans, ngram_spans

MAX_EXPLAIN = 50  # the largest k a request may ask for
LINEAR = (LinearSVC, LogisticRegression, SGDClassifier)


class ExplanationUnavailable(UserError):
    """The model's decision is not a sum of per-feature contributions."""


@dataclass(frozen=True)
class Linear:
    """``decision = x · coef + intercept``, positive towards spam."""

    coef: np.ndarray
    intercept: float


def linear_form(classifier: Any, name: str | None = None) -> Linear:
    """The spam-ward weights and intercept of ``classifier`` (see the module docstring).

    Raises ``ExplanationUnavailable`` (one line, naming the classifier) for any other.
    """
    label = name or type(classifier).__name__
    if isinstance(classifier, CalibratedClassifierCV):
        if len(getattr(classifier, "calibrated_classifiers_", ())) != 1:
            raise ExplanationUnavailable(
                f"explanations are not available for {label} (an ensemble of calibrated models)"
            )
        classifier = base_estimator(classifier)
    classes = list(getattr(classifier, "classes_", []))
    if sorted(classes) != ["ham", "spam"]:
        raise ExplanationUnavailable(
            f"explanations are not available for {label} (classes {classes}, not ham and spam)"
        )
    spam, ham = classes.index("spam"), classes.index("ham")
    if isinstance(classifier, LINEAR):
        sign = 1.0 if spam == 1 else -1.0
        coef = np.asarray(classifier.coef_, dtype=np.float64).reshape(-1) * sign
        return Linear(coef, float(np.asarray(classifier.intercept_).reshape(-1)[0]) * sign)
    if isinstance(classifier, MultinomialNB | ComplementNB):
        log_prob = np.asarray(classifier.feature_log_prob_, dtype=np.float64)
        prior = 0.0
        if isinstance(classifier, MultinomialNB):
            prior = float(classifier.class_log_prior_[spam] - classifier.class_log_prior_[ham])
        return Linear(log_prob[spam] - log_prob[ham], prior)
    raise ExplanationUnavailable(
        f"explanations are not available for {label} "
        "(only for the linear models: linear_svm, logreg, sgd, multinomial_nb, complement_nb)"
    )


class Explainer:
    """Contributions of a fitted pipeline's features to its decision, and their places in the
    raw message."""

    def __init__(self, pipeline: Any, name: str | None = None) -> None:
        if not hasattr(pipeline, "steps"):
            raise ExplanationUnavailable(
                f"explanations are not available for {name or type(pipeline).__name__} "
                "(not a Pipeline of features and a classifier)"
            )
        self.linear = linear_form(pipeline[-1], name)
        names: list[str] = []
        kinds: list[str] = []
        for vectoriser in vectorisers(pipeline):
            terms = vectoriser.get_feature_names_out().tolist()
            names += terms
            kinds += ["word" if vectoriser.analyzer == "word" else "char"] * len(terms)
        if len(names) != len(self.linear.coef):
            raise ExplanationUnavailable(
                f"explanations are not available for {name or 'this model'}: "
                f"{len(names)} feature names for {len(self.linear.coef)} weights"
            )
        self.names, self.kinds = names, kinds

    def contributions(self, X: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each row of the (CSR) TF-IDF matrix: its feature indices and their
        contributions ``x_i * w_i``."""
        X = X.tocsr()
        out = []
        for row in range(X.shape[0]):
            start, end = X.indptr[row], X.indptr[row + 1]
            indices = X.indices[start:end]
            out.append((indices, X.data[start:end] * self.linear.coef[indices]))
        return out

    def decisions(self, X: Any) -> np.ndarray:
        """``X · coef + intercept`` of each row."""
        return np.asarray(X @ self.linear.coef).reshape(-1) + self.linear.intercept

    def explain(
        self, X: Any, k: int, spans: list[TokenSpans] | None = None
    ) -> list[dict[str, Any]]:
        """The ``k`` most spam-ward and ham-ward n-grams of each row of ``X``.

        Each n-gram: ``ngram`` (the feature as the vectoriser names it), ``kind`` (word or
        char), ``contribution``, and ``spans``, its ``[start, end)`` places in the raw
        message (from ``spans``, one ``TokenSpans`` per row; empty when not given or not
        found). ``decision == intercept + sum of all listed contributions + rest``.
        """
        if not 1 <= k <= MAX_EXPLAIN:
            raise UserError(f"explain={k} is out of range; use 1 to {MAX_EXPLAIN}")
        decisions = self.decisions(X)
        out = []
        for row, (indices, values) in enumerate(self.contributions(X)):
            # Largest first; ties in feature order, so the output is reproducible.
            order = np.lexsort((indices, -values))
            spam = [i for i in order[:k] if values[i] > 0]
            ham = [i for i in np.lexsort((indices, values))[:k] if values[i] < 0]
            where = spans[row] if spans is not None else None
            listed = float(values[spam].sum() + values[ham].sum())
            decision = float(decisions[row])
            out.append(
                {
                    "spam": [self._item(indices[i], values[i], where) for i in spam],
                    "ham": [self._item(indices[i], values[i], where) for i in ham],
                    "intercept": self.linear.intercept,
                    "decision": decision,
                    "rest": decision - self.linear.intercept - listed,
                }
            )
        return out

    def _item(self, feature: int, value: float, where: TokenSpans | None) -> dict[str, Any]:
        name, kind = self.names[int(feature)], self.kinds[int(feature)]
        return {
            "ngram": name,
            "kind": kind,
            "contribution": float(value),
            "spans": [] if where is None else ngram_spans(where, name, kind),
        }
