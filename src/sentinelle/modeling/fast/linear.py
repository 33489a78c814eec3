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

A count matrix bigger than a budget (``MAPPED_BUDGET``, or ``fit_folds``' ``budget``)
and mapped from the count file, as in the solver process, is not mapped while fitting: the
kernels read each row they visit from the two files (``pread`` into a buffer, from the
page cache), so the solver's memory holds none of it (``Counts.within``). Same rows, same
order, same arithmetic: the model does not depend on the budget. Not row blocks of the
file visited one after another, each mapped and then dropped: the bias couples every row,
and an epoch that takes its rows in any fixed grouping (contiguous blocks of the file, even
113 rows each in a random block order; or random sets sorted by row) stalls far from the
stopping rule where a fresh random permutation of all rows converges in ~45 epochs
(measured on 50K messages' counts). Nor the whole map with its pages dropped whenever they
pass the budget: random rows then cost a page fault each (fault-around maps 16 pages for
one row), 1.7 to 3.4 times the time of the reads (docs/performance.md).

Compiled with numba (cached in ``__pycache__``); no fast-math, so no
reassociated sums and the same results on every x86-64 CPU.
"""

from __future__ import annotations

import mmap
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numba
import numpy as np
import scipy.sparse as sp

from sentinelle.modeling.fast.tfidf import smooth_idf

TOL = 1e-4  # LinearSVC's default
MAX_ITER = 1000  # LinearSVC's default
BIAS = 1.0  # LinearSVC's intercept_scaling
MAPPED_BUDGET = 4 * 2**30  # bytes of mapped counts above which the kernels read rows instead

_JIT = dict(cache=True, nogil=True, fastmath=False, boundscheck=False)


@dataclass
class Counts:
    """A CSR count matrix (integer counts, int32 columns) whose columns form contiguous blocks
    (one per vectoriser; ``block_end[b]`` is the end of block ``b``). With ``files``
    (``within``), the kernels read rows from the arrays' files instead of the arrays."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    block_end: np.ndarray
    tf: np.ndarray  # tf[count]: the term-frequency weight of a count (1 + log(count) if sublinear)
    # The indices' and the data's file descriptor and byte offset, or -1: read the arrays.
    files: np.ndarray = field(default_factory=lambda: np.full(4, -1, dtype=np.int64))

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
        """These counts, read row by row from their files (``files``) if they are mapped
        files bigger than ``budget`` bytes; else as they are."""
        arrays = (self.indices, self.data)
        if (
            any(getattr(a, "filename", None) is None for a in arrays)
            or sum(a.nbytes for a in arrays) <= budget
        ):
            return self
        fds = [os.open(a.filename, os.O_RDONLY) for a in arrays]  # type: ignore[attr-defined]
        offsets = [a.offset for a in arrays]  # type: ignore[attr-defined]
        held = replace(self, files=np.array([fds[0], offsets[0], fds[1], offsets[1]]))
        weakref.finalize(held, lambda: [os.close(fd) for fd in fds])
        for a in arrays:  # pages mapped before (_largest's), dropped
            a._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
        return held

    def source(self) -> tuple:
        """The kernels' arguments for reading rows: the arrays, ``files`` and a row's buffers."""
        longest = int(np.diff(self.indptr).max(initial=0)) if self.files[0] >= 0 else 0
        buffers = np.empty(longest, self.indices.dtype), np.empty(longest, self.data.dtype)
        return (self.indptr, self.indices, self.data, self.files, *buffers)

    def document_frequency(self, rows: np.ndarray) -> np.ndarray:
        return _document_frequency(*self.source(), rows, self.n_columns)

    def scales(self, rows: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return _row_scales(*self.source(), rows, weight, self.block_end, self.tf)

    def decision(
        self, rows: np.ndarray, weight: np.ndarray, scale: np.ndarray, w: np.ndarray, b: float
    ) -> np.ndarray:
        return _decision(*self.source(), rows, weight, scale, self.block_end, self.tf, w, b)


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
        *counts.source(),
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
    budget: int | None = None,
) -> tuple[list[np.ndarray], tuple[np.ndarray, float, int, np.ndarray] | None]:
    """Cross-validation and final fit, ``jobs`` at a time in threads (the kernels release the GIL).

    For each ``(train_idx, test_idx)`` split: the decision values of ``test_idx`` from
    an SVM fitted on ``train_idx`` with the split's own idf (smoothed document
    frequencies of ``train_idx``; 0 for columns below ``min_df``). With ``weight``
    (the final vectorisers' idf): ``(coef, intercept, iterations, decision values)``
    of the fit on every row, else None. Mapped counts bigger than ``budget`` bytes
    (``MAPPED_BUDGET`` if None) are read row by row from their files (``Counts.within``).
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


@numba.njit(**_JIT)
def _document_frequency(indptr, indices, data, files, ind_buf, dat_buf, rows, n_columns):
    df = np.zeros(n_columns, dtype=np.int64)
    for i in rows:
        ind, _ = _row(indptr, indices, data, files, ind_buf, dat_buf, i)
        for k in range(len(ind)):
            df[ind[k]] += 1
    return df


@numba.njit(**_JIT)
def _row(indptr, indices, data, files, ind_buf, dat_buf, i):
    """Row ``i``'s column indices and counts: views of the arrays, or read from ``files``
    into the buffers."""
    start, end = indptr[i], indptr[i + 1]
    if files[0] < 0:
        return indices[start:end], data[start:end]
    _read(files[0], files[1], ind_buf, start, end)
    _read(files[2], files[3], dat_buf, start, end)
    return ind_buf[: end - start], dat_buf[: end - start]


@numba.njit(**_JIT)
def _read(fd, offset, buf, start, end):
    """Values ``start`` to ``end`` of the array at ``offset`` in file ``fd``, into ``buf``."""
    size = (end - start) * buf.itemsize
    if _pread(np.int32(fd), buf.ctypes.data, size, offset + start * buf.itemsize) != size:
        raise OSError("a short read of the count file")


_pread = numba.types.ExternalFunction(  # libc's: (fd, buffer, bytes, offset) -> bytes read
    "pread",
    numba.types.int64(numba.types.int32, numba.types.uintp, numba.types.uintp, numba.types.int64),
)


@numba.njit(**_JIT)
def _block(j, block_end):
    b = 0
    while j >= block_end[b]:
        b += 1
    return b


@numba.njit(**_JIT)
def _row_scales(indptr, indices, data, files, ind_buf, dat_buf, rows, weight, block_end, tf):
    n_blocks = len(block_end)
    scale = np.ones((len(rows), n_blocks))
    squares = np.zeros(n_blocks)
    for a in range(len(rows)):
        i = rows[a]
        squares[:] = 0.0
        ind, dat = _row(indptr, indices, data, files, ind_buf, dat_buf, i)
        for k in range(len(ind)):
            j = ind[k]
            x = tf[int(dat[k])] * weight[j]
            squares[_block(j, block_end)] += x * x
        for b in range(n_blocks):
            if squares[b] > 0:
                scale[a, b] = 1.0 / np.sqrt(squares[b])
    return scale


@numba.njit(**_JIT)
def _decision(
    indptr, indices, data, files, ind_buf, dat_buf, rows, weight, scale, block_end, tf, w, b
):
    out = np.empty(len(rows))
    for a in range(len(rows)):
        i = rows[a]
        s = 0.0
        ind, dat = _row(indptr, indices, data, files, ind_buf, dat_buf, i)
        for k in range(len(ind)):
            j = ind[k]
            s += w[j] * (tf[int(dat[k])] * weight[j] * scale[a, _block(j, block_end)])
        out[a] = s + b
    return out


@numba.njit(**_JIT)
def _next(state):
    """One step of a 64-bit linear congruential generator (Knuth's MMIX constants)."""
    return state * np.int64(6364136223846793005) + np.int64(1442695040888963407)


@numba.njit(**_JIT)
def _dual_cd(
    indptr,
    indices,
    data,
    files,
    ind_buf,
    dat_buf,
    rows,
    y,
    c,
    weight,
    scale,
    block_end,
    tf,
    eps,
    max_iter,
    seed,
):
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
        ind, dat = _row(indptr, indices, data, files, ind_buf, dat_buf, i)
        for k in range(len(ind)):
            j = ind[k]
            x = tf[int(dat[k])] * weight[j] * scale[a, _block(j, block_end)]
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
            ind, dat = _row(indptr, indices, data, files, ind_buf, dat_buf, i)
            g = wb * BIAS
            for k in range(len(ind)):
                j = ind[k]
                g += w[j] * (tf[int(dat[k])] * weight[j] * scale[a, _block(j, block_end)])
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
                for k in range(len(ind)):
                    j = ind[k]
                    w[j] += delta * (tf[int(dat[k])] * weight[j] * scale[a, _block(j, block_end)])
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


def _largest(data: np.ndarray, step: int = 2**24) -> int:
    """``int(data.max(initial=0))``, ``step`` values at a time, a mapped array's pages
    dropped after each (so never all resident at once)."""
    largest = 0
    for start in range(0, len(data), step):
        largest = max(largest, int(data[start : start + step].max(initial=0)))
        if getattr(data, "_mmap", None) is not None:
            data._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
    return largest


def compile_kernels() -> None:
    """Compile the kernels for the types the pipeline passes them (or load them from the cache).

    numba compiles on first use and caches the machine code in ``__pycache__``;
    ``python -m sentinelle.modeling.fast.linear`` (run by ``dev.py`` after installing) does it
    once, so that the first ``dvc repro`` does not pay the ~2 s.
    """
    for dtype in (np.uint16, np.float32):  # see counting.count
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
