"""The classifiers the ``train`` params name, and what both engines read of a pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.pipeline import Pipeline

from sentinelle.params import TrainParams


def build_classifier(p: TrainParams, seed: int) -> Any:
    """The classifier ``p.classifier`` names, with its params: every one but the linear SVM,
    which each engine fits its own way (``sklearn_engine.classifier``, ``fast.training``)."""
    match p.classifier:
        case "logreg":
            return LogisticRegression(
                C=p.C, class_weight=p.class_weight, solver="liblinear", max_iter=1000
            )
        case "complement_nb":
            return ComplementNB(alpha=p.alpha)
        case "multinomial_nb":
            return MultinomialNB(alpha=p.alpha)
        case "sgd":
            return SGDClassifier(
                loss="modified_huber", alpha=p.alpha, class_weight=p.class_weight, random_state=seed
            )
        case "random_forest":
            return RandomForestClassifier(
                n_estimators=p.n_estimators,
                max_depth=p.max_depth,
                class_weight=p.class_weight,
                n_jobs=p.n_jobs,
                random_state=seed,
            )
    raise AssertionError(p.classifier)  # linear_svm, or a name params.py does not allow


def raw_scores(classifier: Any, X: Any) -> np.ndarray:
    """Spam decision values (SVM) or spam probabilities (every other classifier)."""
    spam = list(classifier.classes_).index("spam")
    if hasattr(classifier, "predict_proba"):
        return classifier.predict_proba(X)[:, spam]
    decision = classifier.decision_function(X)
    return decision if spam == 1 else -decision


def parts(features: Any) -> list[Any]:
    """The vectorisers of a features step: a FeatureUnion's parts, or the one vectoriser."""
    if hasattr(features, "transformer_list"):
        return [v for _, v in features.transformer_list]
    return [features]


def vectorisers(pipeline: Pipeline) -> list[Any]:
    """The vectorisers of a pipeline's features step."""
    return parts(pipeline[0])
