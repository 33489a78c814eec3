"""LinearSVC's problem solved on TF-IDF rows computed on the fly from n-gram counts.

scikit-learn's ``LinearSVC`` hands liblinear a float64 copy of the TF-IDF matrix,
which liblinear copies again into its own format (about 28 bytes per non-zero in
all); with one such matrix per CV fold that is 1.5 GB at 100K messages and 14 GB
at 1M. Here the training matrix is never built: a row's TF-IDF value is
``tf(count) * weight[column] * scale[row, block]`` (``weight``: the idf, 0 for
columns the fold drops by ``min_df``; ``scale``: the inverse L2 norm of the row
within each vectoriser's columns), computed from the one shared count matrix (8
bytes per non-zero) when needed. Every fold reads that matrix, so folds run in
threads (the kernels release the GIL) without copying it.

The solver is liblinear's dual coordinate descent for the L2-regularised,
squared-hinge ("L2-loss") SVM with a regularised bias feature of value 1 (what
``LinearSVC()`` solves, ``dual=True``), with shrinking and the same stopping rule
(projected-gradient spread <= ``tol``). Its own seeded generator orders the
coordinates, so the result is the same on every run; it is a different path to
the same optimum as liblinear, not liblinear's bits.

Compiled with numba (cached in ``__pycache__``); no fast-math, so no
reassociated sums and the same results on every x86-64 CPU.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from sentinelle.features.tfidf import smooth_idf

TOL = 1e-4  # LinearSVC's default
MAX_ITER = 1000  # LinearSVC's default
BIAS = 1.0  # LinearSVC's intercept_scaling

_JIT = dict(cache=True, nogil=True, fastmath=False, boundscheck=False)


@dataclass
class Counts:
    """A CSR count matrix (integer counts, int32 columns) whose columns form contiguous blocks
    (one per vectoriser; ``block_end[b]`` is the end of block ``b``)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    block_end: np.ndarray
    tf: np.ndarray  # tf[count]: the term-frequency weight of a count (1 + log(count) if sublinear)

    @classmethod
    def of(
        cls,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        block_sizes: list[int],
        sublinear_tf: bool,
    ) -> Counts:
        counts = np.arange(int(data.max(initial=0)) + 1, dtype=np.float64)
        with np.errstate(divide="ignore"):
            tf = np.where(counts > 0, 1 + np.log(counts), 0.0) if sublinear_tf else counts
        return cls(
            np.asarray(indptr, dtype=np.int64),
            indices,
            data,
            np.cumsum(block_sizes).astype(np.int64),
            tf,
        )

    @classmethod
    def from_csr(cls, matrix: object, block_sizes: list[int], sublinear_tf: bool) -> Counts:
        return cls.of(matrix.indptr, matrix.indices, matrix.data, block_sizes, sublinear_tf)  # type: ignore[attr-defined]

    @property
    def n_columns(self) -> int:
        return int(self.block_end[-1])

    def document_frequency(self, rows: np.ndarray) -> np.ndarray:
        return _document_frequency(self.indptr, self.indices, rows, self.n_columns)

    def scales(self, rows: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return _row_scales(
            self.indptr, self.indices, self.data, rows, weight, self.block_end, self.tf
        )

    def decision(
        self, rows: np.ndarray, weight: np.ndarray, scale: np.ndarray, w: np.ndarray, b: float
    ) -> np.ndarray:
        return _decision(
            self.indptr, self.indices, self.data, rows, weight, scale, self.block_end, self.tf, w, b
        )


def fit(
    counts: Counts,
    rows: np.ndarray,
    positive: np.ndarray,
    weight: np.ndarray,
    scale: np.ndarray,
    C: float,
    class_weight: str | None,
    seed: int,
    tol: float = TOL,
) -> tuple[np.ndarray, float, int]:
    """``(coef, intercept, iterations)`` of the L2-loss linear SVM on ``rows`` (labels
    ``positive``), their TF-IDF given by ``weight`` and ``scale`` (see the module doc)."""
    y = np.where(positive, 1.0, -1.0)
    c = np.full(len(rows), float(C))
    if class_weight == "balanced":  # as scikit-learn: n / (n_classes * count of the class)
        n_pos = int(np.count_nonzero(positive))
        c[positive] *= len(rows) / (2 * n_pos)
        c[~positive] *= len(rows) / (2 * (len(rows) - n_pos))
    w, wb, iterations = _dual_cd(
        counts.indptr,
        counts.indices,
        counts.data,
        rows,
        y,
        c,
        weight,
        scale,
        counts.block_end,
        counts.tf,
        tol,
        MAX_ITER,
        np.int64(seed),
    )
    return w, wb * BIAS, iterations


def fit_folds(
    counts: Counts,
    positive: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    min_df: int,
    weight: np.ndarray | None,
    C: float,
    class_weight: str | None,
    seed: int,
    jobs: int,
) -> tuple[list[np.ndarray], tuple[np.ndarray, float, int, np.ndarray] | None]:
    """Cross-validation and final fit, ``jobs`` at a time in threads (the kernels release the GIL).

    For each ``(train_idx, test_idx)`` split: the decision values of ``test_idx`` from
    an SVM fitted on ``train_idx`` with the split's own idf (smoothed document
    frequencies of ``train_idx``; 0 for columns below ``min_df``). With ``weight``
    (the final vectorisers' idf): ``(coef, intercept, iterations, decision values)``
    of the fit on every row, else None.
    """

    def fold(split: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        train_idx, test_idx = split
        df = counts.document_frequency(train_idx)
        fold_weight = np.where(df >= min_df, smooth_idf(df, len(train_idx)), 0.0)
        scale = counts.scales(train_idx, fold_weight)
        w, b, _ = fit(
            counts, train_idx, positive[train_idx], fold_weight, scale, C, class_weight, seed
        )
        return counts.decision(test_idx, fold_weight, counts.scales(test_idx, fold_weight), w, b)

    def fit_all(weight: np.ndarray) -> tuple[np.ndarray, float, int, np.ndarray]:
        rows = np.arange(len(positive))
        scale = counts.scales(rows, weight)
        w, b, iterations = fit(counts, rows, positive, weight, scale, C, class_weight, seed)
        return w, b, iterations, counts.decision(rows, weight, scale, w, b)

    tasks = [lambda s=s: fold(s) for s in splits] + (
        [lambda: fit_all(weight)] if weight is not None else []
    )
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(lambda task: task(), tasks))
    return results[: len(splits)], (results[-1] if weight is not None else None)


@numba.njit(**_JIT)
def _document_frequency(indptr, indices, rows, n_columns):
    df = np.zeros(n_columns, dtype=np.int64)
    for i in rows:
        for k in range(indptr[i], indptr[i + 1]):
            df[indices[k]] += 1
    return df


@numba.njit(**_JIT)
def _block(j, block_end):
    b = 0
    while j >= block_end[b]:
        b += 1
    return b


@numba.njit(**_JIT)
def _row_scales(indptr, indices, data, rows, weight, block_end, tf):
    n_blocks = len(block_end)
    scale = np.ones((len(rows), n_blocks))
    squares = np.zeros(n_blocks)
    for a in range(len(rows)):
        i = rows[a]
        squares[:] = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            x = tf[int(data[k])] * weight[j]
            squares[_block(j, block_end)] += x * x
        for b in range(n_blocks):
            if squares[b] > 0:
                scale[a, b] = 1.0 / np.sqrt(squares[b])
    return scale


@numba.njit(**_JIT)
def _decision(indptr, indices, data, rows, weight, scale, block_end, tf, w, b):
    out = np.empty(len(rows))
    for a in range(len(rows)):
        i = rows[a]
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            s += w[j] * (tf[int(data[k])] * weight[j] * scale[a, _block(j, block_end)])
        out[a] = s + b
    return out


@numba.njit(**_JIT)
def _next(state):
    """One step of a 64-bit linear congruential generator (Knuth's MMIX constants)."""
    return state * np.int64(6364136223846793005) + np.int64(1442695040888963407)


@numba.njit(**_JIT)
def _dual_cd(indptr, indices, data, rows, y, c, weight, scale, block_end, tf, eps, max_iter, seed):
    """liblinear's ``solve_l2r_l1l2_svc`` for the L2 loss (upper bound infinite, diag 0.5 / C)."""
    n = len(rows)
    w = np.zeros(len(weight))
    wb = 0.0
    alpha = np.zeros(n)
    diag = 0.5 / c
    qd = np.empty(n)
    for a in range(n):
        i = rows[a]
        q = BIAS * BIAS
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            x = tf[int(data[k])] * weight[j] * scale[a, _block(j, block_end)]
            q += x * x
        qd[a] = diag[a] + q
    index = np.arange(n)
    active = n
    pg_max_old, pg_min_old = np.inf, -np.inf
    state = seed
    iteration = 0
    while iteration < max_iter:
        pg_max_new, pg_min_new = -np.inf, np.inf
        for s in range(active):
            state = _next(state)
            r = s + ((state >> 33) & 0x7FFFFFFF) % (active - s)
            index[s], index[r] = index[r], index[s]
        s = 0
        while s < active:
            a = index[s]
            i = rows[a]
            g = wb * BIAS
            for k in range(indptr[i], indptr[i + 1]):
                j = indices[k]
                g += w[j] * (tf[int(data[k])] * weight[j] * scale[a, _block(j, block_end)])
            g = g * y[a] - 1 + alpha[a] * diag[a]
            pg = 0.0
            if alpha[a] == 0:
                if g > pg_max_old:
                    active -= 1
                    index[s], index[active] = index[active], index[s]
                    continue
                if g < 0:
                    pg = g
            else:
                pg = g
            pg_max_new = max(pg_max_new, pg)
            pg_min_new = min(pg_min_new, pg)
            if abs(pg) > 1e-12:
                old = alpha[a]
                alpha[a] = max(old - g / qd[a], 0.0)
                delta = (alpha[a] - old) * y[a]
                for k in range(indptr[i], indptr[i + 1]):
                    j = indices[k]
                    w[j] += delta * (tf[int(data[k])] * weight[j] * scale[a, _block(j, block_end)])
                wb += delta * BIAS
            s += 1
        iteration += 1
        if pg_max_new - pg_min_new <= eps:
            if active == n:
                break
            active = n
            pg_max_old, pg_min_old = np.inf, -np.inf
            continue
        pg_max_old, pg_min_old = pg_max_new, pg_min_new
        if pg_max_old <= 0:
            pg_max_old = np.inf
        if pg_min_old >= 0:
            pg_min_old = -np.inf
    return w, wb, iteration


def compile_kernels() -> None:
    """Compile the kernels for the types the pipeline passes them (or load them from the cache).

    numba compiles on first use and caches the machine code in ``__pycache__``;
    ``python -m sentinelle.svm.linear`` (run by ``dev.py`` after installing) does it
    once, so that the first ``dvc repro`` does not pay the ~2 s.
    """
    for dtype in (np.uint16, np.float32):  # see features.counting.count
        matrix = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 1], [1, 1, 0]], dtype=dtype))
        matrix.indices = matrix.indices.astype(np.int32)
        counts = Counts.from_csr(matrix, [1, 2], sublinear_tf=True)
        rows = np.arange(3)
        weight = counts.document_frequency(rows).astype(np.float64)
        scale = counts.scales(rows, weight)
        w, b, _ = fit(counts, rows, np.array([True, False, True]), weight, scale, 1.0, None, seed=0)
        counts.decision(rows, weight, scale, w, b)


if __name__ == "__main__":
    compile_kernels()
