"""The ``sklearn`` engine: the model, written in scikit-learn's own terms.

This module is the specification of what the train stage fits. The ``fast`` engine
(``modeling.fast``) computes the same model for large corpora; ``tests/test_engines.py``
checks that both give the same verdicts and scores. In order:

1. Features: TF-IDF of word n-grams of the normalised tokens (the preprocess stage has
   already normalised, case-folded and tokenised the text: a token is anything between
   spaces) and/or of ``char_wb`` n-grams, side by side (``train.features``).
2. Classifier: ``LinearSVC`` (``train.classifier: linear_svm``, the default); the other
   classifiers (``logreg``, the naive Bayes, ``sgd``, ``random_forest``) are the scikit-learn
   estimators both engines take from ``pipeline.build_classifier``.
3. Out-of-fold scores: the whole pipeline, features included, is fitted on all folds but
   one and scores the one left out, over ``train.cv_folds`` grouped stratified folds:
   near-duplicates (the ``group`` column, one per normalised text) stay in one fold, as
   ingest keeps them on one side of the train/test split. These scores choose the
   operating points (``train.py``, the same for both engines).
4. The final pipeline is fitted on every training message.
5. Platt scaling (``linear_svm``): a sigmoid fitted on the out-of-fold decision values maps
   the SVM's decision values to spam probabilities.

No process or thread is started: this is the reference, not the fast path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from sentinelle.modeling.calibration import SIGMOID_DIGITS, calibrated_svm
from sentinelle.modeling.fitted import FittedModel
from sentinelle.modeling.folds import grouped_stratified_folds
from sentinelle.modeling.pipeline import build_classifier
from sentinelle.params import Params, TrainParams

__all__ = ["fit"]

# LinearSVC stops when the spread of its projected gradient is below ``tol`` (default
# 1e-4); a tighter one brings its solution closer to the exact optimum, which both engines
# approach by different paths (tests/test_engines.py measures how close they get).
SVM_TOL = 1e-5
SVM_MAX_ITER = 10_000


def fit(train: pd.DataFrame, params: Params) -> FittedModel:
    """The model fitted on ``train`` (columns ``text``, ``label``, ``group``) by ``params``,
    with the out-of-fold scores that choose its operating points."""
    p, seed = params.train, params.base.seed
    texts = train["text"].tolist()
    labels = train["label"].to_numpy()
    # The project's grouped stratified folds, not scikit-learn's StratifiedGroupKFold: the
    # same idea (each group in one fold, classes balanced), but linear in the messages (the
    # latter takes minutes on a million singleton groups) and the very folds of the fast
    # engine, so both engines' out-of-fold scores, thresholds and sigmoids agree.
    folds = grouped_stratified_folds(labels, train["group"], p.cv_folds, seed)
    oof = out_of_fold_scores(pipeline(p, seed), texts, labels, folds)

    model = pipeline(p, seed).fit(texts, labels)
    n_features = model[-1].n_features_in_
    if p.classifier == "linear_svm":
        model.steps[-1] = ("classifier", platt_scaled(p, model[-1], oof, labels == "spam"))
    spam = list(model.classes_).index("spam")
    return FittedModel(model, oof, model.predict_proba(texts)[:, spam], n_features)


def pipeline(p: TrainParams, seed: int) -> Pipeline:
    """The unfitted pipeline: TF-IDF features, then the classifier (uncalibrated)."""
    return Pipeline([("features", features(p)), ("classifier", classifier(p, seed))])


def features(p: TrainParams, vectoriser: type[TfidfVectorizer] = TfidfVectorizer) -> Any:
    """TF-IDF of word n-grams of the normalised tokens and/or of ``char_wb`` n-grams, side by
    side (``train.features``). The fast engine passes its ``CompactTfidfVectorizer``, a
    ``TfidfVectorizer`` with the same output, counted faster and saved smaller."""
    common: dict[str, Any] = dict(
        lowercase=False,  # the preprocess stage has case-folded
        min_df=p.min_df,
        max_features=p.max_features,
        sublinear_tf=p.sublinear_tf,
        dtype=np.float64,  # as the classifiers want it: no float32 -> float64 copy
    )
    word = vectoriser(analyzer="word", token_pattern=r"\S+", ngram_range=p.word_ngrams, **common)
    char = vectoriser(analyzer="char_wb", ngram_range=p.char_ngrams, **common)
    if p.features == "union":
        return FeatureUnion([("word", word), ("char", char)])
    return word if p.features == "word" else char


def classifier(p: TrainParams, seed: int) -> Any:
    """``LinearSVC`` (uncalibrated: Platt scaling comes after the out-of-fold scores), or the
    classifier of ``pipeline.build_classifier``."""
    if p.classifier == "linear_svm":
        return LinearSVC(
            C=p.C,
            class_weight=p.class_weight,
            tol=SVM_TOL,
            max_iter=SVM_MAX_ITER,
            random_state=seed,
        )
    return build_classifier(p, seed)


def out_of_fold_scores(
    unfitted: Pipeline, texts: list[str], labels: np.ndarray, folds: list[Any]
) -> np.ndarray:
    """Each text's spam score from the pipeline fitted on the other folds: the SVM's
    decision value, or the spam probability of any other classifier."""
    if isinstance(unfitted[-1], LinearSVC):  # classes sorted: ham, spam; > 0 is spam
        return cross_val_predict(unfitted, texts, labels, cv=folds, method="decision_function")
    proba = cross_val_predict(unfitted, texts, labels, cv=folds, method="predict_proba")
    return proba[:, list(np.unique(labels)).index("spam")]


def platt_scaled(
    p: TrainParams, svm: LinearSVC, oof: np.ndarray, spam: np.ndarray
) -> CalibratedClassifierCV:
    """``svm`` with Platt's sigmoid ``P(spam) = 1 / (1 + exp(a * decision + b))``, fitted on
    the out-of-fold decision values ``oof`` (not on the SVM's values for texts it has seen).

    Platt's targets, as scikit-learn's ``CalibratedClassifierCV`` uses them: spam
    ``(n_spam + 1) / (n_spam + 2)``, ham ``1 / (n_ham + 2)``. A logistic regression
    without penalty on the one feature ``oof`` minimises that log loss when each message
    appears once as spam and once as ham, weighted by its target. The parameters are kept
    to ``SIGMOID_DIGITS`` significant digits, as the fast engine keeps them, so the file
    does not depend on the machine's last bits. The result is the object the fast engine
    builds: ``CalibratedClassifierCV`` holding ``svm`` and the sigmoid.
    """
    n_spam, n_ham = int(spam.sum()), int((~spam).sum())
    target = np.where(spam, (n_spam + 1) / (n_spam + 2), 1 / (n_ham + 2))
    twice = np.concatenate([oof, oof]).reshape(-1, 1)
    sides = np.concatenate([np.ones(len(oof)), np.zeros(len(oof))])
    logistic = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(
        twice, sides, sample_weight=np.concatenate([target, 1 - target])
    )
    a, b = -logistic.coef_[0, 0], -logistic.intercept_[0]
    return calibrated_svm(
        svm, float(f"{a:.{SIGMOID_DIGITS}g}"), float(f"{b:.{SIGMOID_DIGITS}g}"), p.cv_folds
    )
