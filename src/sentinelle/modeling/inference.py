"""What a fitted model says about texts and about itself: spam scores, top features."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from sentinelle.modeling.calibration import base_estimator
from sentinelle.modeling.explanations import feature_labels

SCORE_CHUNK = 5_000  # texts transformed at a time by spam_scores (bounds the TF-IDF matrix)


def spam_scores(model: Pipeline, texts: Any) -> np.ndarray:
    """Probability-like spam score in [0, 1] for each normalised text, ``SCORE_CHUNK`` texts
    at a time."""
    spam = list(model.classes_).index("spam")
    texts = texts if isinstance(texts, list) else list(texts)
    parts = [
        model.predict_proba(texts[i : i + SCORE_CHUNK])[:, spam]
        for i in range(0, len(texts), SCORE_CHUNK)
    ]
    return np.concatenate(parts) if parts else np.empty(0)


def top_features(model: Pipeline, n: int) -> dict[str, list[tuple[str, float]]]:
    """The ``n`` features that push hardest towards spam and towards ham, each named as a
    person reads it (``explanations.label``: "have won", "“·0”").

    Linear models: their weights; naive Bayes: the log-probability ratio; random
    forest: its (unsigned) impurity importances, all under "spam".
    """
    names = feature_labels(model)
    classifier = base_estimator(model[-1])
    spam = list(classifier.classes_).index("spam")
    if hasattr(classifier, "coef_"):
        weights = classifier.coef_[0] * (1 if spam == 1 else -1)
    elif hasattr(classifier, "feature_log_prob_"):
        weights = classifier.feature_log_prob_[spam] - classifier.feature_log_prob_[1 - spam]
    else:
        order = np.argsort(-classifier.feature_importances_, kind="stable")[:n]
        return {
            "spam": [(str(names[i]), float(classifier.feature_importances_[i])) for i in order],
            "ham": [],
        }
    weights = np.asarray(weights, dtype=np.float64)
    top_spam = np.argsort(-weights, kind="stable")[:n]
    top_ham = np.argsort(weights, kind="stable")[:n]
    return {
        "spam": [(str(names[i]), float(weights[i])) for i in top_spam],
        "ham": [(str(names[i]), float(weights[i])) for i in top_ham],
    }
