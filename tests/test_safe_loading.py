"""Model files that must never be loaded: a pickle gadget, a skops file with a foreign type."""

from __future__ import annotations

import os
import pickle
import zipfile
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


def _with_module_renamed(path: Path, old: str, new: str) -> None:
    """Rewrite ``path``'s schema.json as if its classes of module ``old`` lived in ``new``."""
    with zipfile.ZipFile(path) as archive:
        members = {info: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members.items():
            if info.filename == "schema.json":
                data = data.replace(f'"{old}"'.encode(), f'"{new}"'.encode())
            archive.writestr(info, data)


def test_a_model_saved_before_the_vectoriser_moved_loads_and_scores_the_same(
    tmp_path: Path,
) -> None:
    """Models saved while the vectoriser lived in ``sentinelle.features.vectorizer`` (up to
    issue 30) load as they were saved: same file, same hash, same scores."""
    path = tiny_model.make(tmp_path)
    today = persistence.load(path)
    _with_module_renamed(
        path, "sentinelle.modeling.fast.vectorizer", "sentinelle.features.vectorizer"
    )
    assert "sentinelle.features.vectorizer.CompactTfidfVectorizer" in persistence.types_in(path)
    saved = path.read_bytes()

    old = persistence.load(path, expected_sha256=io.sha256_file(path))

    assert path.read_bytes() == saved  # loading rewrites nothing on disk
    assert type(old[0].transformer_list[0][1]) is type(today[0].transformer_list[0][1])
    texts = tiny_model.SPAM + tiny_model.HAM
    assert old.predict_proba(texts).tolist() == today.predict_proba(texts).tolist()


def test_a_moved_module_name_does_not_open_the_allowlist(tmp_path: Path) -> None:
    """Only the recorded old module is mapped: another class under it is still refused."""
    path = tiny_model.make(tmp_path)
    _with_module_renamed(path, "sentinelle.modeling.fast.vectorizer", "sentinelle.features.other")
    with pytest.raises(UserError, match=r"not on the allowlist: sentinelle\.features\.other\."):
        persistence.load(path)
