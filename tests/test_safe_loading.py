"""Model files that must never be loaded: a pickle gadget, a skops file with a foreign type."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import tiny_model
from cli_helper import sentinelle
from sentinelle import io
from sentinelle.errors import UserError
from sentinelle.modeling import persistence


class Gadget:
    """Unpickling this runs a shell command: what a malicious "model" file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_gadget_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = tmp_path / "model.skops"
    model.write_bytes(pickle.dumps(Gadget(marker), protocol=4))
    io.write_json(
        tmp_path / "model.json",
        {
            "model_sha256": io.sha256_file(model),
            "model_version": "x",
            "threshold": 0.5,
            "params": {"preprocess": {}},
        },
    )
    with pytest.raises(
        UserError,
        match=r"model\.skops: not a readable skops model file: it is a pickle .* never loaded",
    ):
        persistence.load_with_metadata(model, tmp_path / "model.json")
    proc = sentinelle("score", "-", "--model", model, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "it is a pickle (pickle/joblib)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_foreign_type_in_a_skops_file_is_refused_even_with_the_right_hash(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tiny_model.make(tmp_path)
    sio.dump(
        FunctionTransformer(func=os.getcwd), path
    )  # a "model" that calls a function of our choosing
    meta = io.read_json(path.with_suffix(".json"))
    io.write_json(path.with_suffix(".json"), {**meta, "model_sha256": io.sha256_file(path)})
    with pytest.raises(
        UserError, match=r"refusing to load types not on the allowlist: .*FunctionTransformer"
    ):
        persistence.load_with_metadata(path, path.with_suffix(".json"))
