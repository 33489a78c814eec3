"""The linear SVM's fits in a process of their own, reading a count matrix nobody copies.

At 100K messages the train stage's process holds scikit-learn, pandas, the texts
and the vocabularies (about 300 MB); the fits need numba and LLVM (about 110 MB)
and the count matrix (140 MB). So the counts go to a ``CountFile`` (two ``.npy``
files the stage appends to chunk by chunk), and a ``Solver``, a fresh interpreter that imports only
numpy, SciPy's sparse module and numba (started when training starts, so its
imports overlap the counting), maps it and runs the fits. The stage's process
never maps the matrix unless it needs it itself (other classifiers).

    python -m sentinelle.modeling.fast.solver     # the solver process (started by Solver)
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sentinelle.modeling.fast.countfile import CountFile


class Solver:
    """``python -m sentinelle.modeling.fast.solver`` on ``counts``' file: one request of fits.

    Use as a context manager; the process is stopped on leaving it.
    """

    def __init__(self, counts: CountFile) -> None:
        src = str(
            Path(__file__).resolve().parents[3]
        )  # this copy of sentinelle, not another install
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sentinelle.modeling.fast.solver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._counts = counts

    def fit(
        self,
        *,
        indptr: np.ndarray,
        block_sizes: list[int],
        sublinear_tf: bool,
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
        """``linear.fit_folds`` (same arguments and result) in the solver process, on the
        file's counts."""
        assert self._process.stdin is not None and self._process.stdout is not None
        header = {
            "data": str(self._counts.data_path),
            "indices": str(self._counts.indices_path),
            "block_sizes": block_sizes,
            "sublinear_tf": sublinear_tf,
            "n_splits": len(splits),
            "min_df": min_df,
            "C": C,
            "class_weight": class_weight,
            "seed": seed,
            "jobs": jobs,
            "budget": budget,
        }
        arrays = {"indptr": indptr, "positive": positive}
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
            raise RuntimeError(
                f"the SVM solver process failed (exit code {code}); its error is above"
            ) from None
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
    reply = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the reply
    # numba loads here, while the stage counts; not at the top: the stage imports this module.
    from sentinelle.modeling.fast import linear

    try:
        job, arrays = _read(sys.stdin.buffer)
    except EOFError:
        return  # the stage stopped before asking
    data, indices = np.load(job["data"], mmap_mode="c"), np.load(job["indices"], mmap_mode="c")
    counts = linear.Counts.of(
        arrays["indptr"], indices, data, job["block_sizes"], job["sublinear_tf"]
    )
    splits = [(arrays[f"train{i}"], arrays[f"test{i}"]) for i in range(job["n_splits"])]
    folds, whole = linear.fit_folds(
        counts,
        arrays["positive"],
        splits,
        job["min_df"],
        arrays.get("weight"),
        job["C"],
        job["class_weight"],
        job["seed"],
        job["jobs"],
        job["budget"],
    )
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
