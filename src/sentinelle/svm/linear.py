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

A count matrix bigger than a budget (``MAPPED_BUDGET``, or ``fit_folds``' ``budget``),
mapped from the count file, is not left to fill the solver's memory: the kernels run a few
thousand rows per call and, between calls, drop the arrays' pages
(``madvise(MADV_DONTNEED)``) whenever this process's mapped file pages have grown by half
the budget (``Counts.within``); the pages come back from the page cache when next read.
The coordinate steps are the same, in the same order, as in one call: the model does not
depend on the budget. Not row blocks visited one after another: with the bias coupling
every row, an epoch that takes rows in any fixed grouping (contiguous blocks of the file,
even 113 rows each, in random block order; or random sets sorted by row) stalls far from
the stopping rule where a fresh random permutation converges in ~45 epochs (measured on
50K messages' counts). The price is page faults: random rows of a file bigger than the
budget are mostly not resident (docs/performance.md has the figures).

Compiled with numba (cached in ``__pycache__``); no fast-math, so no
reassociated sums and the same results on every x86-64 CPU.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numba
import numpy as np
import scipy.sparse as sp

from sentinelle.features.tfidf import smooth_idf

TOL = 1e-4  # LinearSVC's default
MAX_ITER = 1000  # LinearSVC's default
BIAS = 1.0  # LinearSVC's intercept_scaling
# A count matrix bigger than this (bytes of non-zeros, mapped) is held to it: its pages are
# dropped from the solver's memory whenever they pass half of it (Counts.within).
MAPPED_BUDGET = 4 * 2**30
# A row read at random maps up to 64 KB of each array (Linux's fault-around): the kernels read
# budget / STEP_ROW_BYTES rows between two checks, a quarter of the budget at most, so two fits
# at a time stay within it.
STEP_ROW_BYTES = 8 * 2**16

_JIT = dict(cache=True, nogil=True, fastmath=False, boundscheck=False)


@dataclass
class Counts:
    """A CSR count matrix (integer counts, int32 columns) whose columns form contiguous blocks
    (one per vectoriser; ``block_end[b]`` is the end of block ``b``). With ``limit``
    (``within``), the kernels read ``limit / STEP_ROW_BYTES`` rows at a time and this process's
    mapped file pages are dropped whenever they exceed half the limit (``relieve``)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    block_end: np.ndarray
    tf: np.ndarray  # tf[count]: the term-frequency weight of a count (1 + log(count) if sublinear)
    limit: int | None = None
    base: int = 0  # this process's mapped bytes without the counts' pages (``within``)

    @classmethod
    def of(
        cls,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        block_sizes: list[int],
        sublinear_tf: bool,
    ) -> Counts:
        counts = np.arange(_largest(data) + 1, dtype=np.float64)
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

    def within(self, budget: int) -> Counts:
        """These counts, held to ``budget`` bytes of mapped pages if they are a mapped file
        bigger than that; else as they are."""
        mapped = all(getattr(a, "_mmap", None) is not None for a in (self.indices, self.data))
        if not mapped or self.indices.nbytes + self.data.nbytes <= budget:
            return self
        self._release()
        return replace(self, limit=budget, base=_mapped_bytes())

    def step_rows(self, n: int) -> int:
        """How many of ``n`` rows the kernels take at a time: all, unless held to a limit."""
        return n if self.limit is None else max(1, self.limit // STEP_ROW_BYTES)

    def relieve(self) -> None:
        """If this process's mapped file pages have grown by more than half the limit since
        ``within``, drop the count arrays' pages."""
        if self.limit is not None and _mapped_bytes() - self.base > self.limit // 2:
            self._release()

    def _release(self) -> None:
        """Drop the count arrays' pages from this process (``madvise(MADV_DONTNEED)``; they are
        read again from the page cache when next used, and nothing was ever written to these
        copy-on-write maps)."""
        for array in (self.indices, self.data):
            array._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]

    def passes(self, rows: np.ndarray) -> Iterator[np.ndarray]:
        """The positions ``0 .. len(rows) - 1``, ``step_rows`` at a time, ``relieve``-ing after
        each."""
        step = max(1, self.step_rows(len(rows)))
        for start in range(0, len(rows), step):
            yield np.arange(start, min(start + step, len(rows)))
            self.relieve()

    def document_frequency(self, rows: np.ndarray) -> np.ndarray:
        df = np.zeros(self.n_columns, dtype=np.int64)
        for positions in self.passes(rows):
            _document_frequency(self.indptr, self.indices, rows, positions, df)
        return df

    def scales(self, rows: np.ndarray, weight: np.ndarray) -> np.ndarray:
        scale = np.ones((len(rows), len(self.block_end)))
        for positions in self.passes(rows):
            _row_scales(
                self.indptr,
                self.indices,
                self.data,
                rows,
                positions,
                weight,
                self.block_end,
                self.tf,
                scale,
            )
        return scale

    def decision(
        self, rows: np.ndarray, weight: np.ndarray, scale: np.ndarray, w: np.ndarray, b: float
    ) -> np.ndarray:
        out = np.empty(len(rows))
        for positions in self.passes(rows):
            _decision(
                self.indptr,
                self.indices,
                self.data,
                rows,
                positions,
                weight,
                scale,
                self.block_end,
                self.tf,
                w,
                b,
                out,
            )
        return out


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
    w, wb, iterations = _dual_cd(counts, rows, y, c, weight, scale, tol, MAX_ITER, seed)
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
    budget: int | None = None,
) -> tuple[list[np.ndarray], tuple[np.ndarray, float, int, np.ndarray] | None]:
    """Cross-validation and final fit, ``jobs`` at a time in threads (the kernels release the GIL).

    For each ``(train_idx, test_idx)`` split: the decision values of ``test_idx`` from
    an SVM fitted on ``train_idx`` with the split's own idf (smoothed document
    frequencies of ``train_idx``; 0 for columns below ``min_df``). With ``weight``
    (the final vectorisers' idf): ``(coef, intercept, iterations, decision values)``
    of the fit on every row, else None. Counts bigger than ``budget`` bytes
    (``MAPPED_BUDGET`` if None) are held to that many bytes in memory (``Counts.within``).
    """
    counts = counts.within(MAPPED_BUDGET if budget is None else budget)

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


def _dual_cd(
    counts: Counts,
    rows: np.ndarray,
    y: np.ndarray,
    c: np.ndarray,
    weight: np.ndarray,
    scale: np.ndarray,
    eps: float,
    max_iter: int,
    seed: int,
) -> tuple[np.ndarray, float, int]:
    """liblinear's ``solve_l2r_l1l2_svc`` for the L2 loss (upper bound infinite, diag 0.5 / C).

    Each epoch shuffles the active rows (``_shuffle``) and steps through them
    (``_steps``), all in one call, or ``counts.step_rows`` rows per call with the mapped
    pages released in between (``counts.relieve``): the same steps in the same order.
    """
    n = len(rows)
    diag = 0.5 / c
    qd = np.empty(n)
    for positions in counts.passes(rows):
        _squared_norms(
            counts.indptr,
            counts.indices,
            counts.data,
            rows,
            positions,
            weight,
            scale,
            counts.block_end,
            counts.tf,
            qd,
        )
    qd = diag + qd
    index = np.arange(n)
    step = counts.step_rows(n)
    w = np.zeros(len(weight))
    wb = 0.0
    alpha = np.zeros(n)
    active = n
    pg_max_old, pg_min_old = np.inf, -np.inf
    state = np.int64(seed)
    iteration = 0
    while iteration < max_iter:
        pg_max_new, pg_min_new = -np.inf, np.inf
        state = _shuffle(index, active, state)
        s = 0
        while s < active:
            s, active, wb, pg_max_new, pg_min_new = _steps(
                counts.indptr,
                counts.indices,
                counts.data,
                rows,
                y,
                diag,
                qd,
                weight,
                scale,
                counts.block_end,
                counts.tf,
                w,
                wb,
                alpha,
                index,
                s,
                active,
                step,
                pg_max_old,
                pg_max_new,
                pg_min_new,
            )
            counts.relieve()
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


@numba.njit(**_JIT)
def _document_frequency(indptr, indices, rows, positions, df):
    for a in positions:
        i = rows[a]
        for k in range(indptr[i], indptr[i + 1]):
            df[indices[k]] += 1


@numba.njit(**_JIT)
def _block(j, block_end):
    b = 0
    while j >= block_end[b]:
        b += 1
    return b


@numba.njit(**_JIT)
def _row_scales(indptr, indices, data, rows, positions, weight, block_end, tf, scale):
    n_blocks = len(block_end)
    squares = np.zeros(n_blocks)
    for a in positions:
        i = rows[a]
        squares[:] = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            x = tf[int(data[k])] * weight[j]
            squares[_block(j, block_end)] += x * x
        for b in range(n_blocks):
            if squares[b] > 0:
                scale[a, b] = 1.0 / np.sqrt(squares[b])


@numba.njit(**_JIT)
def _decision(indptr, indices, data, rows, positions, weight, scale, block_end, tf, w, b, out):
    for a in positions:
        i = rows[a]
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            s += w[j] * (tf[int(data[k])] * weight[j] * scale[a, _block(j, block_end)])
        out[a] = s + b


@numba.njit(**_JIT)
def _squared_norms(indptr, indices, data, rows, positions, weight, scale, block_end, tf, out):
    """The rows' squared norms with the bias feature: ``out[a] = BIAS² + ‖x_a‖²``."""
    for a in positions:
        i = rows[a]
        q = BIAS * BIAS
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            x = tf[int(data[k])] * weight[j] * scale[a, _block(j, block_end)]
            q += x * x
        out[a] = q


@numba.njit(**_JIT)
def _next(state):
    """One step of a 64-bit linear congruential generator (Knuth's MMIX constants)."""
    return state * np.int64(6364136223846793005) + np.int64(1442695040888963407)


@numba.njit(**_JIT)
def _shuffle(index, active, state):
    """Shuffle ``index[:active]`` in place (Fisher-Yates with ``_next``); the state after."""
    for s in range(active):
        state = _next(state)
        r = s + ((state >> 33) & 0x7FFFFFFF) % (active - s)
        index[s], index[r] = index[r], index[s]
    return state


@numba.njit(**_JIT)
def _steps(
    indptr,
    indices,
    data,
    rows,
    y,
    diag,
    qd,
    weight,
    scale,
    block_end,
    tf,
    w,
    wb,
    alpha,
    index,
    s,
    active,
    visits,
    pg_max_old,
    pg_max_new,
    pg_min_new,
):
    """The epoch's coordinate steps from ``index[s]``, for ``visits`` rows or to ``active``:
    ``(s, active, wb, pg_max_new, pg_min_new)`` after them (``w``, ``alpha`` updated in place;
    a shrunk row is swapped past ``active``)."""
    for _ in range(visits):
        if s >= active:
            break
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
    return s, active, wb, pg_max_new, pg_min_new


def _largest(data: np.ndarray, step: int = 2**24) -> int:
    """``int(data.max(initial=0))``, ``step`` values at a time, a mapped array's pages dropped
    after each (the whole array is never resident)."""
    largest = 0
    for start in range(0, len(data), step):
        largest = max(largest, int(data[start : start + step].max(initial=0)))
        if getattr(data, "_mmap", None) is not None:
            data._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
    return largest


def _mapped_bytes() -> int:
    """This process's resident file-backed and shared pages, in bytes (``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[2]) * mmap.PAGESIZE


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
