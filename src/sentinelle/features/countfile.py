"""A CSR count matrix written chunk by chunk into an anonymous file that processes share.

The counting processes write each chunk of counts straight into the file with
``pwrite``, at an offset reserved for it from pass 1's count of its n-grams before
pruning (an upper bound), so chunks can be written in any order by any process;
whoever maps the file first moves them together (``compact``) into an ordinary
CSR matrix. The file is a memfd (an unlinked temporary file where there is none),
so its descriptor can be inherited by forked workers and passed to the SVM solver
process (``sentinelle.svm.solver``), and nothing is left behind on disk.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref
from typing import Any

import numpy as np
import scipy.sparse as sp


class CountFile:
    """The data and column indices of a CSR count matrix, chunk by chunk, in an anonymous file.

    Layout: ``data`` for every chunk's reserved capacity, then ``indices`` likewise.
    The file descriptor is inherited by forked processes and passed to the solver.
    """

    def __init__(self) -> None:
        if hasattr(os, "memfd_create"):  # Linux: anonymous shared memory
            self.fd = os.memfd_create("sentinelle-counts")
        else:
            handle, path = tempfile.mkstemp(prefix="sentinelle-counts-")
            os.unlink(path)  # gone once closed, whatever happens
            self.fd = handle
        self.layout: dict[str, Any] = {}
        self.close = weakref.finalize(self, os.close, self.fd)  # at the latest when garbage

    def reserve(self, capacities: np.ndarray, data_dtype: Any, index_dtype: Any) -> None:
        """Room for chunks of at most ``capacities[c]`` non-zeros each."""
        offsets = np.concatenate([[0], np.cumsum(capacities, dtype=np.int64)])
        total = int(offsets[-1])
        data_bytes = total * np.dtype(data_dtype).itemsize
        self.layout = {
            "offsets": offsets,
            "nnz": np.zeros(len(capacities), dtype=np.int64),
            "data": (np.dtype(data_dtype).str, 0),
            "indices": (np.dtype(index_dtype).str, data_bytes),
        }
        os.ftruncate(self.fd, max(1, data_bytes + total * np.dtype(index_dtype).itemsize))

    def write(self, chunk: int, data: np.ndarray, indices: np.ndarray) -> None:
        """Chunk ``chunk``'s non-zeros, at its reserved offset (from any process holding the file)."""
        start = int(self.layout["offsets"][chunk])
        assert len(data) <= self.layout["offsets"][chunk + 1] - start, "chunk larger than pass 1 counted"
        for name, values in (("data", data), ("indices", indices)):
            dtype, base = self.layout[name]
            _pwrite(self.fd, np.ascontiguousarray(values, dtype=dtype), base + start * np.dtype(dtype).itemsize)

    def csr(self, indptr: np.ndarray, n_columns: int) -> Any:
        """The matrix, mapped into this process (compacted in place first)."""
        data, indices = mapped(self.fd, self.layout)
        nnz = compact(data, indices, self.layout["offsets"], self.layout["nnz"])
        return sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(len(indptr) - 1, n_columns), copy=False)

    def __enter__(self) -> CountFile:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _pwrite(fd: int, values: np.ndarray, offset: int) -> None:
    view = memoryview(values).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def mapped(fd: int, layout: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    buffer = mmap.mmap(fd, os.fstat(fd).st_size)
    total = int(layout["offsets"][-1])
    (data_dtype, data_base), (index_dtype, index_base) = layout["data"], layout["indices"]
    return (
        np.frombuffer(buffer, dtype=data_dtype, count=total, offset=data_base),
        np.frombuffer(buffer, dtype=index_dtype, count=total, offset=index_base),
    )


def compact(data: np.ndarray, indices: np.ndarray, offsets: np.ndarray, nnz: np.ndarray) -> int:
    """Move the chunks (``nnz[c]`` values at ``offsets[c]``) together, in order; the total."""
    end = 0
    for start, n in zip(offsets[:-1].tolist(), nnz.tolist(), strict=True):
        if start != end:  # moving left: numpy copies overlapping ranges correctly
            data[end : end + n] = data[start : start + n]
            indices[end : end + n] = indices[start : start + n]
        end += n
    return end

