"""sentinelle.svm.linear: LinearSVC's problem solved from counts, with no TF-IDF matrix built."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.svm import LinearSVC

from sentinelle.features import counting
from sentinelle.features.tfidf import smooth_idf, tfidf_rows
from sentinelle.svm import linear


def _problem(seed: int, n: int = 600, sizes: tuple[int, ...] = (40, 120)):
    """Random counts in two column blocks, labels from a hidden linear rule with noise."""
    rng = np.random.default_rng(seed)
    d = sum(sizes)
    dense = rng.poisson(0.08, size=(n, d)).astype(np.float32)
    dense[rng.random((n, d)) < 0.5] = 0
    dense[:, -10:] = 0
    dense[7, -10:] = 2  # rare columns (df 1), for min_df to drop
    dense[:5, :] = 0  # empty rows: norm 0, scale 1, as scikit-learn
    counts = sp.csr_matrix(dense)
    counts.indices = counts.indices.astype(np.int32)
    truth = rng.normal(size=d)
    positive = (dense @ truth + rng.normal(scale=0.5, size=n)) > 0.4
    return counts, list(sizes), positive


def _explicit(counts, sizes, weight, sublinear):
    """The TF-IDF matrix the solver never builds, built with tfidf_rows (scikit-learn's
    arithmetic)."""
    keep = weight > 0
    remap = np.where(keep, np.cumsum(keep) - 1, -1)
    block = counting._column_block(sizes)[keep]
    X = tfidf_rows(counts, remap, weight[keep], block, len(sizes), sublinear)
    full = sp.csr_matrix(
        (X.data, np.flatnonzero(keep)[X.indices], X.indptr), shape=(counts.shape[0], len(weight))
    )
    return full


@pytest.mark.parametrize("class_weight", [None, "balanced"])
@pytest.mark.parametrize("sublinear", [True, False])
def test_fit_reaches_liblinears_optimum_on_the_implicit_tfidf(class_weight, sublinear) -> None:
    counts, sizes, positive = _problem(seed=3)
    c = linear.Counts.from_csr(counts, sizes, sublinear)
    rows = np.arange(counts.shape[0])
    df = c.document_frequency(rows)
    np.testing.assert_array_equal(df, np.bincount(counts.indices, minlength=sum(sizes)))
    weight = np.where(
        df >= 3, smooth_idf(df, len(rows)), 0.0
    )  # some columns dropped, as min_df does
    assert (weight == 0).any()
    scale = c.scales(rows, weight)
    X = _explicit(counts, sizes, weight, sublinear)
    # Solved tightly, both solvers land on the same optimum: the same problem.
    exact = LinearSVC(
        C=0.7, class_weight=class_weight, tol=1e-10, max_iter=100_000, random_state=0
    ).fit(X, positive)
    w, b, _ = linear.fit(c, rows, positive, weight, scale, 0.7, class_weight, seed=5, tol=1e-10)
    np.testing.assert_allclose(w, exact.coef_[0], atol=2e-6)
    np.testing.assert_allclose(b, exact.intercept_[0], atol=2e-6)
    assert w[weight == 0].tolist() == [0.0] * int((weight == 0).sum())
    decision = c.decision(rows, weight, scale, w, b)
    np.testing.assert_allclose(
        decision, X @ w + b, atol=1e-12
    )  # on-the-fly rows == the explicit ones

    # At the default tolerance (LinearSVC's), as close to the optimum as liblinear gets.
    y = np.where(positive, 1.0, -1.0)
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight(class_weight, classes=np.array([False, True]), y=positive)
    cost = np.where(positive, weights[1], weights[0]) * 0.7

    def objective(coef, intercept) -> float:
        margin = np.maximum(0, 1 - y * (X @ coef + intercept))
        return 0.5 * (float(coef @ coef) + intercept**2) + float(np.sum(cost * margin**2))

    best = objective(exact.coef_[0], exact.intercept_[0])
    w, b, iterations = linear.fit(c, rows, positive, weight, scale, 0.7, class_weight, seed=5)
    assert 0 < iterations < linear.MAX_ITER
    default = LinearSVC(C=0.7, class_weight=class_weight, random_state=0).fit(X, positive)
    gap, liblinear_gap = (
        objective(w, b) - best,
        objective(default.coef_[0], default.intercept_[0]) - best,
    )
    assert gap <= max(liblinear_gap * 10, 1e-6 * best), (gap, liblinear_gap)
    assert (
        (c.decision(rows, weight, scale, w, b) > 0) != (default.decision_function(X) > 0)
    ).sum() <= 2


def test_fit_on_a_subset_of_rows_equals_fit_on_those_rows_alone() -> None:
    counts, sizes, positive = _problem(seed=4)
    rows = np.arange(0, counts.shape[0], 3)
    whole = linear.Counts.from_csr(counts, sizes, True)
    alone = linear.Counts.from_csr(counts[rows], sizes, True)
    weight = smooth_idf(whole.document_frequency(rows), len(rows))
    a = linear.fit(
        whole, rows, positive[rows], weight, whole.scales(rows, weight), 1.0, None, seed=1
    )
    local = np.arange(len(rows))
    b = linear.fit(
        alone, local, positive[rows], weight, alone.scales(local, weight), 1.0, None, seed=1
    )
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


def test_fit_is_deterministic_and_the_seed_only_moves_it_within_tolerance() -> None:
    counts, sizes, positive = _problem(seed=5)
    c = linear.Counts.from_csr(counts, sizes, True)
    rows = np.arange(counts.shape[0])
    weight = smooth_idf(c.document_frequency(rows), len(rows))
    scale = c.scales(rows, weight)
    runs = [linear.fit(c, rows, positive, weight, scale, 1.0, None, seed=s) for s in (1, 1, 2)]
    assert runs[0][0].tobytes() == runs[1][0].tobytes() and runs[0][1] == runs[1][1]
    assert runs[0][0].tobytes() != runs[2][0].tobytes()  # another coordinate order...
    np.testing.assert_allclose(runs[0][0], runs[2][0], atol=2e-4)  # ...the same optimum
