"""The linear SVM's fits in a process of their own, reading a count matrix nobody copies.

At 100K messages the train stage's process holds scikit-learn, pandas, the texts
and the vocabularies (about 300 MB); the fits need numba and LLVM (about 110 MB)
and the count matrix (140 MB). Together that was a 600 MB process. So the
matrix goes to an anonymous file (``CountFile``: a memfd, or an unlinked
temporary file where there is none): the counting processes write each chunk of
counts straight into it with ``pwrite``, and a ``Solver``, a fresh interpreter
that imports only numpy and numba (started when training starts, so its imports
overlap the counting), maps it and runs the fits. The stage's process never maps
the matrix unless it needs it itself (other classifiers, see ``CountFile.csr``).

Each chunk is written at an offset reserved for it from pass 1's count of its
n-grams before pruning (an upper bound), so the chunks can be written in any
order by any process; whoever maps the file first moves them together
(``_compact``) into an ordinary CSR matrix.

    python -m sentinelle.solver     # the solver process (started by Solver)
"""

from __future__ import annotations

import io
import json
import mmap
import os
import struct
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np


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
        import scipy.sparse as sp

        data, indices = _mapped(self.fd, self.layout)
        nnz = _compact(data, indices, self.layout["offsets"], self.layout["nnz"])
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


def _mapped(fd: int, layout: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    buffer = mmap.mmap(fd, os.fstat(fd).st_size)
    total = int(layout["offsets"][-1])
    (data_dtype, data_base), (index_dtype, index_base) = layout["data"], layout["indices"]
    return (
        np.frombuffer(buffer, dtype=data_dtype, count=total, offset=data_base),
        np.frombuffer(buffer, dtype=index_dtype, count=total, offset=index_base),
    )


def _compact(data: np.ndarray, indices: np.ndarray, offsets: np.ndarray, nnz: np.ndarray) -> int:
    """Move the chunks (``nnz[c]`` values at ``offsets[c]``) together, in order; the total."""
    end = 0
    for start, n in zip(offsets[:-1].tolist(), nnz.tolist(), strict=True):
        if start != end:  # moving left: numpy copies overlapping ranges correctly
            data[end : end + n] = data[start : start + n]
            indices[end : end + n] = indices[start : start + n]
        end += n
    return end


class Solver:
    """``python -m sentinelle.solver`` with ``counts``' file: fits on request, one request.

    Use as a context manager; the process is stopped on leaving it.
    """

    def __init__(self, counts: CountFile) -> None:
        src = str(Path(__file__).resolve().parents[1])  # this copy of sentinelle, not another install
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sentinelle.solver"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(counts.fd,), env=env,
        )  # fmt: skip
        self._counts = counts

    def fit(
        self, *, indptr: np.ndarray, block_sizes: list[int], sublinear_tf: bool, positive: np.ndarray,
        splits: list[tuple[np.ndarray, np.ndarray]], min_df: int, weight: np.ndarray | None,
        C: float, class_weight: str | None, seed: int, jobs: int,
    ) -> tuple[list[np.ndarray], tuple[np.ndarray, float, int, np.ndarray] | None]:  # fmt: skip
        """``linear.fit_folds`` (same arguments and result) in the solver process, on the file's counts."""
        assert self._process.stdin is not None and self._process.stdout is not None
        layout = self._counts.layout
        header = {
            "fd": self._counts.fd, "data": layout["data"], "indices": layout["indices"],
            "block_sizes": block_sizes, "sublinear_tf": sublinear_tf, "n_splits": len(splits),
            "min_df": min_df, "C": C, "class_weight": class_weight, "seed": seed, "jobs": jobs,
        }  # fmt: skip
        arrays = {"offsets": layout["offsets"], "nnz": layout["nnz"], "indptr": indptr, "positive": positive}
        for i, (train_idx, test_idx) in enumerate(splits):
            arrays[f"train{i}"], arrays[f"test{i}"] = train_idx, test_idx
        if weight is not None:
            arrays["weight"] = weight
        try:
            _write(self._process.stdin, header, arrays)
            self._process.stdin.close()
            header, arrays = _read(self._process.stdout)
        except (BrokenPipeError, EOFError):
            code = self._process.wait()
            raise RuntimeError(f"the SVM solver process failed (exit code {code}); its error is above") from None
        folds = [arrays[f"fold{i}"] for i in range(len(splits))]
        if weight is None:
            return folds, None
        return folds, (arrays["w"], header["b"], header["iterations"], arrays["decision"])

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *_: Any) -> None:
        if self._process.poll() is None and self._process.stdin and not self._process.stdin.closed:
            self._process.stdin.close()  # no request: the solver exits
        self._process.wait()
        assert self._process.stdout is not None
        self._process.stdout.close()


def _write(stream: Any, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """One message: the sizes, a JSON header, the arrays as an .npz (nothing pickled either way)."""
    packed = io.BytesIO()
    np.savez(packed, **arrays)
    head = json.dumps(header).encode()
    stream.write(struct.pack("<QQ", len(head), packed.tell()))
    stream.write(head)
    stream.write(packed.getbuffer())
    stream.flush()


def _read(stream: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A message of ``_write``; EOFError if the stream ends first."""
    sizes = stream.read(16)
    if len(sizes) < 16:
        raise EOFError
    n_head, n_arrays = struct.unpack("<QQ", sizes)
    header = json.loads(stream.read(n_head))
    packed = stream.read(n_arrays)
    if len(packed) < n_arrays:
        raise EOFError
    with np.load(io.BytesIO(packed), allow_pickle=False) as npz:
        return header, {name: npz[name] for name in npz.files}


def main() -> None:
    """The solver process: one request from stdin, its result to stdout."""
    import gc

    gc.disable()  # a short batch job, as the stages (see stage.run)
    reply = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the reply
    from sentinelle import linear  # numpy + numba: loads while the stage counts

    try:
        job, arrays = _read(sys.stdin.buffer)
    except EOFError:
        return  # the stage stopped before asking
    layout = {"offsets": arrays["offsets"], "nnz": arrays["nnz"], "data": job["data"], "indices": job["indices"]}
    data, indices = _mapped(job["fd"], layout)
    nnz = _compact(data, indices, layout["offsets"], layout["nnz"])
    counts = linear.Counts.of(arrays["indptr"], indices[:nnz], data[:nnz], job["block_sizes"], job["sublinear_tf"])
    splits = [(arrays[f"train{i}"], arrays[f"test{i}"]) for i in range(job["n_splits"])]
    folds, whole = linear.fit_folds(
        counts, arrays["positive"], splits, job["min_df"], arrays.get("weight"),
        job["C"], job["class_weight"], job["seed"], job["jobs"],
    )  # fmt: skip
    results = {f"fold{i}": scores for i, scores in enumerate(folds)}
    header: dict[str, Any] = {}
    if whole is not None:
        w, b, iterations, decision = whole
        results |= {"w": w, "decision": decision}
        header = {"b": float(b), "iterations": int(iterations)}  # JSON keeps every bit of a float
    _write(reply, header, results)
    reply.close()


if __name__ == "__main__":
    main()
