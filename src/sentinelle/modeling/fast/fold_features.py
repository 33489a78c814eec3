"""Per-fold TF-IDF from one count of the n-grams: the out-of-fold scores of the classifiers
other than the SVM."""

from __future__ import annotations

from typing import Any

import numpy as np

from sentinelle.modeling import sklearn_engine
from sentinelle.modeling.fast.counting import Combined, count
from sentinelle.modeling.fast.tfidf import smooth_idf, tfidf_rows
from sentinelle.modeling.fast.vectorizer import CompactTfidfVectorizer
from sentinelle.modeling.pipeline import parts
from sentinelle.params import TrainParams


def fold_featuriser(p: TrainParams, texts: np.ndarray, counts: Combined | None = None) -> Any:
    """A function ``(train_idx, test_idx) -> (X_train, X_test)``: features fitted on train_idx only.

    ``counts``: the n-gram counts of ``texts``, if already computed (their
    vocabulary must hold every n-gram a fold could keep).
    """
    if p.max_features is not None:

        def refit(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[Any, Any]:
            features = sklearn_engine.features(p, CompactTfidfVectorizer)
            return features.fit_transform(texts[train_idx]), features.transform(texts[test_idx])

        return refit
    if counts is None:
        counts = count(parts(sklearn_engine.features(p, CompactTfidfVectorizer)), texts)

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
