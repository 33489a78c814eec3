"""The fast engine's fit: the pipeline and the out-of-fold scores that choose its threshold,
from one count of the n-grams."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from sentinelle import compute
from sentinelle.modeling import sklearn_engine
from sentinelle.modeling.calibration import calibrated_svm, fit_sigmoid, sigmoid
from sentinelle.modeling.fast.countfile import CountFile
from sentinelle.modeling.fast.counting import Combined, count
from sentinelle.modeling.fast.fold_features import fold_featuriser
from sentinelle.modeling.fast.solver import Solver
from sentinelle.modeling.fast.tfidf import smooth_idf, tfidf_rows
from sentinelle.modeling.fast.vectorizer import CompactTfidfVectorizer
from sentinelle.modeling.fitted import FittedModel
from sentinelle.modeling.folds import grouped_stratified_folds
from sentinelle.modeling.pipeline import build_classifier, raw_scores, vectorisers
from sentinelle.params import Params, TrainParams

# From this many training texts the SVM is fitted in a solver process (``solver``):
# the stage's process then never holds the count matrix, numba or the fits' arrays.
# Below it, starting that process (~0.2 s) costs more than the memory it saves.
SOLVER_MIN_TEXTS = 20_000


def fit(train: pd.DataFrame, params: Params) -> FittedModel:
    """The model fitted on ``train`` (columns ``text``, ``label``, ``group``) by ``params``,
    with the out-of-fold scores that choose its operating points."""
    return _fit(
        params.train,
        params.base.seed,
        train["text"],
        train["label"],
        train["group"],
        jobs=2,
        final=True,
    )


def build_pipeline(p: TrainParams, seed: int) -> Pipeline:
    """The unfitted pipeline: the specification's features, counted by ``CompactTfidfVectorizer``,
    then the classifier (the linear SVM sigmoid-calibrated, so that its scores are
    probabilities like the others')."""
    if p.classifier == "linear_svm":
        classifier = CalibratedClassifierCV(
            raw_classifier(p, seed), method="sigmoid", cv=p.cv_folds, ensemble=False
        )
    else:
        classifier = build_classifier(p, seed)
    features = sklearn_engine.features(p, CompactTfidfVectorizer)
    return Pipeline([("features", features), ("classifier", classifier)])


def raw_classifier(p: TrainParams, seed: int) -> Any:
    """The classifier whose scores choose the threshold: the SVM before calibration."""
    if p.classifier == "linear_svm":
        return LinearSVC(C=p.C, class_weight=p.class_weight, random_state=seed)
    return build_classifier(p, seed)


def splits(
    p: TrainParams, seed: int, texts: np.ndarray, labels: np.ndarray, groups: Any | None
) -> Any:
    """The CV folds: grouped stratified with ``groups``, else scikit-learn's stratified."""
    if groups is None:
        return StratifiedKFold(p.cv_folds, shuffle=True, random_state=seed).split(texts, labels)
    return grouped_stratified_folds(labels, groups, p.cv_folds, seed)


def out_of_fold_scores(
    p: TrainParams, seed: int, texts: Any, labels: Any, groups: Any | None = None
) -> np.ndarray:
    """Raw spam scores of every training message from a model that never saw it.

    Stratified ``p.cv_folds``-fold CV (shuffled with ``seed``; with ``groups``, e.g.
    the canonical text, a group stays in one fold as ingest keeps near-duplicates
    on one side of the split) of the whole pipeline:
    in each fold the TF-IDF vocabulary and weights are fitted on the training folds
    only, exactly as ``build_pipeline`` would, but computed from one n-gram count
    pass over all texts instead of one per fold (when ``max_features`` is set the
    per-fold vectorisers are fitted for real, since the cut depends on the fold).
    Scores are on the raw scale of ``pipeline.raw_scores``; ``probability_threshold`` maps a
    threshold on that scale to the fitted model's ``spam_scores``.
    """
    return _fit(p, seed, texts, labels, groups, jobs=2, final=False).oof


def train(
    p: TrainParams, seed: int, texts: Any, labels: Any, groups: Any | None = None, jobs: int = 2
) -> FittedModel:
    """Fit the pipeline and the out-of-fold scores that choose its threshold, in one go.

    The same model as ``build_pipeline(p, seed).fit(texts, labels)`` and the same
    scores as ``out_of_fold_scores``, but the n-gram counts of the training texts are
    computed once (vectorised, see ``counting``) and shared by the final vectorisers
    and every fold. The linear SVM (the default) is fitted by ``linear``
    straight from those counts, fold and final fits ``jobs`` at a time in threads,
    with no TF-IDF matrix built; its Platt sigmoid is fitted on the out-of-fold
    decision values (the grouped CV that also chooses the threshold) instead of a
    second, ungrouped internal CV of ``CalibratedClassifierCV``; see ``fit_sigmoid``.
    Other classifiers get per-fold TF-IDF matrices and scikit-learn's ``fit``, one
    fold at a time.
    """
    return _fit(p, seed, texts, labels, groups, jobs=jobs, final=True)


def _fit(
    p: TrainParams, seed: int, texts: Any, labels: Any, groups: Any | None, jobs: int, final: bool
) -> FittedModel:
    texts = np.asarray(texts, dtype=object)
    labels = np.asarray(labels)
    file = CountFile()
    svm = p.classifier == "linear_svm" and p.max_features is None
    # From SOLVER_MIN_TEXTS on, the SVM is fitted in a solver process, which starts first:
    # it loads numba while this one counts.
    with file, Solver(file) if svm and len(texts) >= SOLVER_MIN_TEXTS else nullcontext() as solver:
        pipeline = build_pipeline(p, seed)
        fitted = vectorisers(pipeline)
        counts = count(fitted, texts, file)
        compute.release()  # the counting workers' memory goes back before the fits
        n_terms = [len(v.vocabulary_) for v in fitted]
        idf = np.split(smooth_idf(counts.df, len(texts)), np.cumsum(n_terms)[:-1])
        for vectoriser, weights in zip(fitted, idf, strict=True):
            vectoriser.set_idf(weights)
        folds = list(splits(p, seed, texts, labels, groups))
        if svm:
            return _fit_svm(p, seed, pipeline, solver, counts, labels, folds, jobs, final)
        return _fit_in_process(p, seed, pipeline, counts, texts, labels, folds, idf, final)


def _fit_in_process(
    p: TrainParams,
    seed: int,
    pipeline: Pipeline,
    counts: Combined,
    texts: np.ndarray,
    labels: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    idf: list[np.ndarray],
    final: bool,
) -> FittedModel:
    """Every classifier but the linear SVM of ``_fit_svm`` (so also the SVM with ``max_features``):
    per-fold TF-IDF matrices and scikit-learn's ``fit``."""
    oof = np.empty(len(texts), dtype=np.float64)
    make = fold_featuriser(p, texts, counts if p.max_features is None else None)
    for train_idx, test_idx in splits:
        X_train, X_test = make(train_idx, test_idx)
        classifier = raw_classifier(p, seed).fit(X_train, labels[train_idx])
        del X_train
        oof[test_idx] = raw_scores(classifier, X_test)
    if not final:
        return FittedModel(pipeline, oof, np.empty(0), 0)
    weights = np.concatenate(idf)
    X = tfidf_rows(
        counts.matrix,
        np.arange(len(weights)),
        weights,
        counts.column_block,
        counts.n_blocks,
        p.sublinear_tf,
    )
    classifier = raw_classifier(p, seed).fit(X, labels)
    if p.classifier == "linear_svm":
        classifier = calibrated_svm(
            classifier, *fit_sigmoid(oof, labels == classifier.classes_[1]), p.cv_folds
        )
    pipeline.steps[-1] = (pipeline.steps[-1][0], classifier)
    spam = list(classifier.classes_).index("spam")
    return FittedModel(pipeline, oof, classifier.predict_proba(X)[:, spam], X.shape[1])


def _fit_svm(
    p: TrainParams,
    seed: int,
    pipeline: Pipeline,
    solver: Solver | None,
    counts: Combined,
    labels: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    jobs: int,
    final: bool,
) -> FittedModel:
    """The linear SVM's folds and final fit: ``linear.fit_folds`` on ``counts``, in
    ``solver``'s process, or in this one if None."""
    classes = np.unique(labels)
    positive = labels == classes[1]
    sign = 1.0 if classes[1] == "spam" else -1.0  # raw scores are spam scores
    sizes = np.bincount(counts.column_block, minlength=counts.n_blocks).tolist()
    job = dict(
        positive=positive,
        splits=splits,
        min_df=p.min_df,
        C=p.C,
        class_weight=p.class_weight,
        seed=seed,
        jobs=jobs,
        weight=np.concatenate([v.idf_ for v in vectorisers(pipeline)]) if final else None,
    )
    if solver is None:
        # numba: only in the process that fits (see SOLVER_MIN_TEXTS)
        from sentinelle.modeling.fast import linear

        results, whole = linear.fit_folds(
            linear.Counts.from_csr(counts.matrix, sizes, p.sublinear_tf), **job
        )
    else:
        results, whole = solver.fit(
            indptr=counts.indptr, block_sizes=sizes, sublinear_tf=p.sublinear_tf, **job
        )

    oof = np.empty(len(labels), dtype=np.float64)
    for (_, test_idx), scores in zip(splits, results, strict=True):
        oof[test_idx] = sign * scores
    if not final:
        return FittedModel(pipeline, oof, np.empty(0), 0)
    w, b, iterations, decision = whole
    svm = raw_classifier(p, seed)
    assert isinstance(svm, LinearSVC)
    svm.classes_, svm.coef_, svm.intercept_ = classes, w.reshape(1, -1), np.array([b])
    svm.n_features_in_, svm.n_iter_ = len(w), iterations
    classifier = calibrated_svm(svm, *fit_sigmoid(sign * oof, positive), p.cv_folds)
    pipeline.steps[-1] = (pipeline.steps[-1][0], classifier)
    proba = sigmoid(classifier).predict(decision)  # P(classes[1])
    return FittedModel(pipeline, oof, proba if sign > 0 else 1 - proba, len(w))
