"""modeling.fast.linear: LinearSVC's problem solved from counts, with no TF-IDF matrix built."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.svm import LinearSVC

from sentinelle.modeling.fast import counting, linear
from sentinelle.modeling.fast.countfile import CountFile
from sentinelle.modeling.fast.tfidf import smooth_idf, tfidf_rows


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


def _mapped(counts, tmp_path):
    """``counts``' arrays written to ``.npy`` files and mapped, as the solver process maps them."""
    for name in ("data", "indices"):
        np.save(tmp_path / f"{name}.npy", getattr(counts, name))
    return (np.load(tmp_path / f"{name}.npy", mmap_mode="c") for name in ("data", "indices"))


def test_mapped_counts_over_the_budget_are_read_from_their_files_with_the_same_result(
    tmp_path,
) -> None:
    counts, sizes, positive = _problem(seed=6, n=900)
    data, indices = _mapped(counts, tmp_path)
    mapped = linear.Counts.of(counts.indptr, indices, data, sizes, True)
    budget = data.nbytes + indices.nbytes - 1
    assert (mapped.within(budget).files >= 0).all()  # descriptors and offsets: read the files
    assert (mapped.within(budget + 1).files == -1).all()  # within the budget: the map
    assert (linear.Counts.from_csr(counts, sizes, True).within(0).files == -1).all()  # memory
    rng = np.random.default_rng(0)
    train = np.sort(rng.permutation(900)[:600])
    splits = [(train, np.setdiff1d(np.arange(900), train))]
    weight = smooth_idf(mapped.document_frequency(np.arange(900)), 900)
    runs = [
        linear.fit_folds(mapped, positive, splits, 2, weight, 0.7, "balanced", 3, 2, budget=b)
        for b in (None, budget, budget)
    ]
    for folds, (w, b, iterations, decision) in runs[1:]:  # the same bytes, run after run
        assert [f.tobytes() for f in folds] == [f.tobytes() for f in runs[0][0]]
        assert (w.tobytes(), b, iterations, decision.tobytes()) == (
            runs[0][1][0].tobytes(),
            runs[0][1][1],
            runs[0][1][2],
            runs[0][1][3].tobytes(),
        )
    assert 0 < runs[0][1][2] < linear.MAX_ITER


_HELD = r"""
import json, resource, sys
from pathlib import Path
import numpy as np
from sentinelle.modeling.fast.solver import Solver
data, indices, job, budget = sys.argv[1], sys.argv[2], np.load(sys.argv[3]), json.loads(sys.argv[4])
file = type("File", (), {"data_path": Path(data), "indices_path": Path(indices)})()
with Solver(file) as solver:
    _, (w, b, iterations, _) = solver.fit(
        indptr=job["indptr"], block_sizes=[1000, 1000], sublinear_tf=True,
        positive=job["positive"], splits=[], min_df=1, weight=np.ones(2000), C=1e-9,
        class_weight=None, seed=0, jobs=1, budget=budget,
    )
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the solver's
print(json.dumps([peak, iterations, w.tobytes().hex()]))
"""


def test_the_solver_process_holds_a_big_count_file_to_its_budget(tmp_path) -> None:
    rows, per_row, budget = 50_000, 900, 64 * 2**20  # a 257 MB count file
    rng = np.random.default_rng(0)
    with CountFile() as file:
        file.start(rows * per_row, np.uint16, np.int32)
        for _ in range(rows // 10_000):  # random counts and columns
            n = 10_000 * per_row
            file.append(rng.integers(1, 4, n), rng.integers(0, 2000, n))
        file.finish()
        size = file.data_path.stat().st_size + file.indices_path.stat().st_size
        np.savez(
            tmp_path / "job.npz",
            indptr=np.arange(rows + 1) * per_row,
            positive=rng.random(rows) < 0.3,
        )
        paths = [str(file.data_path), str(file.indices_path), str(tmp_path / "job.npz")]
        held, whole = (
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", _HELD, *paths, json.dumps(b)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for b in (budget, None)  # held to 64 MB; the default budget, bigger than the file
        )
    assert whole[0] > size  # unbounded, the whole file was resident in the solver...
    assert held[0] < whole[0] - size + budget  # ...held to the budget, at most the budget of it
    assert held[1:] == whole[1:]  # and the same fit
