"""Cross-validation folds that keep near-duplicates together, and per-fold features."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from sentinelle.features.counting import Combined, count
from sentinelle.features.tfidf import smooth_idf, tfidf_rows
from sentinelle.modeling.pipeline import build_pipeline, vectorisers
from sentinelle.params import TrainParams


def splits(
    p: TrainParams, seed: int, texts: np.ndarray, labels: np.ndarray, groups: Any | None
) -> Any:
    if groups is None:
        return StratifiedKFold(p.cv_folds, shuffle=True, random_state=seed).split(texts, labels)
    return grouped_stratified_folds(labels, groups, p.cv_folds, seed)


def grouped_stratified_folds(
    labels: Any, groups: Any, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` ``(train_idx, test_idx)`` folds; each group wholly in one fold, classes balanced.

    A group counts for the label of its first message (as in ``data.split``).
    Per class, groups are shuffled with ``seed``, ordered largest first, and each is
    put in the fold that holds the fewest messages of that class so far. Linear in
    the number of messages (scikit-learn's StratifiedGroupKFold takes minutes for
    a million singleton groups) and as balanced as the group sizes allow.
    """
    labels = np.asarray(labels)
    group = pd.factorize(np.asarray(groups, dtype=object))[0]
    sizes = np.bincount(group)
    first = np.full(len(sizes), -1, dtype=np.int64)
    first[group[::-1]] = np.arange(len(group))[::-1]
    group_label = labels[first]
    rng = np.random.default_rng(seed)
    fold_of_group = np.empty(len(sizes), dtype=np.int64)
    for label in np.unique(group_label):
        members = np.flatnonzero(group_label == label)
        members = members[rng.permutation(len(members))]
        members = members[np.argsort(-sizes[members], kind="stable")]
        heap = [(0, f) for f in range(k)]
        for g, size in zip(members.tolist(), sizes[members].tolist(), strict=True):
            filled, f = heapq.heappop(heap)
            fold_of_group[g] = f
            heapq.heappush(heap, (filled + size, f))
    fold = fold_of_group[group]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def fold_featuriser(
    p: TrainParams, seed: int, texts: np.ndarray, counts: Combined | None = None
) -> Any:
    """A function ``(train_idx, test_idx) -> (X_train, X_test)``: features fitted on train_idx only.

    ``counts``: the n-gram counts of ``texts``, if already computed (their
    vocabulary must hold every n-gram a fold could keep).
    """
    if p.max_features is not None:

        def refit(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[Any, Any]:
            features = build_pipeline(p, seed)[0]
            return features.fit_transform(texts[train_idx]), features.transform(texts[test_idx])

        return refit
    if counts is None:
        counts = count(vectorisers(build_pipeline(p, seed)), texts)

    def from_counts(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[Any, Any]:
        train_counts = counts.matrix[train_idx]
        df = np.bincount(train_counts.indices, minlength=counts.matrix.shape[1])
        keep = df >= p.min_df
        remap = np.where(keep, np.cumsum(keep) - 1, -1)
        idf = smooth_idf(df[keep], len(train_idx))
        block = counts.column_block[keep]
        X_train = tfidf_rows(train_counts, remap, idf, block, counts.n_blocks, p.sublinear_tf)
        del train_counts
        return X_train, tfidf_rows(
            counts.matrix[test_idx], remap, idf, block, counts.n_blocks, p.sublinear_tf
        )

    return from_counts
