"""TF-IDF maths on count matrices: scikit-learn's smoothed idf, weights, and L2-normalised rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def smooth_idf(df: np.ndarray, n_documents: int) -> np.ndarray:
    """scikit-learn's smoothed idf, ``log((1 + n) / (1 + df)) + 1``, in float64."""
    return np.log((1 + n_documents) / (1 + df.astype(np.float64))) + 1


def tfidf_rows(
    counts: Any,
    remap: np.ndarray,
    idf: np.ndarray,
    block: np.ndarray,
    n_blocks: int,
    sublinear_tf: bool,
) -> Any:
    """TF-IDF (float64 CSR) of count rows, keeping the columns ``remap`` maps to >= 0,
    L2-normalised per row within each vectoriser's columns (``block`` of each kept column)."""
    index = np.int32 if max(counts.shape[0] * n_blocks, len(remap)) < 2**31 else np.int64
    cols = remap.astype(index)[counts.indices]
    mask = cols >= 0
    cols = cols[mask]
    n_rows = counts.shape[0]
    row_of = np.repeat(np.arange(n_rows, dtype=index), np.diff(counts.indptr))[mask]
    data = counts.data[mask].astype(np.float64)
    del mask
    if sublinear_tf:
        np.log(data, out=data)
        data += 1
    data *= idf[cols]
    cell = row_of * index(n_blocks) + block.astype(index)[cols] if n_blocks > 1 else row_of
    squares = np.square(data)
    norms = np.sqrt(np.bincount(cell, weights=squares, minlength=n_rows * n_blocks))
    del squares
    norms[norms == 0] = 1
    data /= norms[cell]
    del cell
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=n_rows))])
    return sp.csr_matrix((data, cols, indptr), shape=(n_rows, len(idf)))
