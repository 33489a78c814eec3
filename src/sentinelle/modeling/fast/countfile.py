"""A CSR count matrix's non-zeros, appended chunk by chunk to two ``.npy`` files in a
temporary folder.

The process that counts (``counting``) appends each chunk as it arrives, in
order (``append``), or copies in a chunk that a worker on this machine wrote beside the
files (``write_piece``, then ``append_piece``). So no process holds or maps the whole matrix;
whoever needs it, the stage for the other classifiers or the SVM solver process
(``solver``), maps the files (``np.load(..., mmap_mode="c")``). The folder
is removed when the file is closed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse as sp


class CountFile:
    """``data.npy`` and ``indices.npy`` of ``nnz`` values each, filled chunk by chunk in order."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="sentinelle-counts-")
        self.data_path = Path(self._folder.name) / "data.npy"
        self.indices_path = Path(self._folder.name) / "indices.npy"
        self.nnz = 0
        self._written = 0
        self._files: list[tuple[BinaryIO, np.dtype]] = []

    def start(self, nnz: int, data_dtype: Any, index_dtype: Any) -> None:
        """Begin both files, for exactly ``nnz`` values."""
        self.nnz = nnz
        for path, dtype in ((self.data_path, data_dtype), (self.indices_path, index_dtype)):
            fh = open(path, "wb")  # noqa: SIM115 (closed by finish)
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                "fortran_order": False,
                "shape": (nnz,),
            }
            np.lib.format.write_array_header_2_0(fh, header)
            self._files.append((fh, np.dtype(dtype)))

    def append(self, data: np.ndarray, indices: np.ndarray) -> None:
        """The next chunk's values and column indices (cast to the file's types)."""
        if len(data) != len(indices):
            raise ValueError(f"chunk of {len(data)} values but {len(indices)} indices")
        if self._written + len(data) > self.nnz:
            raise ValueError(
                f"chunk of {len(data)} values past the {self.nnz} the file was started for"
            )
        for (fh, dtype), values in zip(self._files, (data, indices), strict=True):
            fh.write(np.ascontiguousarray(values, dtype=dtype).data)
        self._written += len(data)

    @property
    def folder(self) -> Path:
        """The temporary folder of the two files, where ``write_piece`` may write pieces."""
        return self.data_path.parent

    def append_piece(self, piece: tuple[Path, Path]) -> None:
        """The next chunk, from the two files ``write_piece`` wrote (in the file's types),
        copied in by the kernel and then removed."""
        sizes = [
            path.stat().st_size // dtype.itemsize
            for path, (_, dtype) in zip(piece, self._files, strict=True)
        ]
        if sizes[0] != sizes[1]:
            raise ValueError(f"piece of {sizes[0]} values but {sizes[1]} indices: {piece[0]}")
        if self._written + sizes[0] > self.nnz:
            raise ValueError(
                f"piece of {sizes[0]} values past the {self.nnz} the file was started for"
            )
        for (fh, _), path in zip(self._files, piece, strict=True):
            fh.flush()
            with path.open("rb") as src:
                left = path.stat().st_size
                while left:
                    left -= os.copy_file_range(src.fileno(), fh.fileno(), left)
            path.unlink()
        self._written += sizes[0]

    def finish(self) -> None:
        """Close both files; every value the file was started for must have been appended."""
        for fh, _ in self._files:
            fh.close()
        self._files = []
        if self._written != self.nnz:
            raise ValueError(f"{self._written} values appended, {self.nnz} expected")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data, indices)``, mapped (copy-on-write: writable like any array, the files
        untouched)."""
        return np.load(self.data_path, mmap_mode="c"), np.load(self.indices_path, mmap_mode="c")

    def csr(self, indptr: np.ndarray, n_columns: int) -> Any:
        """The matrix, mapped into this process."""
        data, indices = self.arrays()
        return sp.csr_matrix(
            (data, indices, indptr), shape=(len(indptr) - 1, n_columns), copy=False
        )

    def close(self) -> None:
        for fh, _ in self._files:
            fh.close()
        self._folder.cleanup()

    def __enter__(self) -> CountFile:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def write_piece(
    folder: Path, name: str, data: np.ndarray, indices: np.ndarray
) -> tuple[Path, Path]:
    """A chunk's values and indices as two raw files in ``folder`` (``CountFile.folder``), for
    the counting process to copy in with ``append_piece``: what a worker on the same machine
    does instead of sending them back (docs/performance.md)."""
    paths = (Path(folder) / f"{name}.data", Path(folder) / f"{name}.indices")
    for path, values in zip(paths, (data, indices), strict=True):
        values.tofile(path)  # a rerun task (a worker lost) writes it again, whole
    return paths
