"""Model building, reproducible skops save and the safe loader."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT
from sentinelle import io, models
from sentinelle.errors import UserError
from sentinelle.params import load

PARAMS = load(ROOT / "params.yaml")
TEXTS = ["win a free prize now", "call _phone_ to claim _money_", "see you at lunch", "ok lar on my way"] * 10
LABELS = ["spam", "spam", "ham", "ham"] * 10


def fitted(**overrides):
    p = dataclasses.replace(PARAMS.train, **overrides)
    return models.build_pipeline(p, seed=1).fit(TEXTS, LABELS)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"classifier": "logreg", "features": "word"},
        {"classifier": "complement_nb", "features": "char"},
        {"classifier": "multinomial_nb"},
        {"classifier": "sgd"},
        {"classifier": "random_forest", "features": "word", "max_features": 150, "n_estimators": 10},
    ],
)
def test_every_classifier_saves_reproducibly_and_loads_with_the_allowlist(tmp_path: Path, overrides) -> None:
    model = fitted(**overrides)
    sha_a = models.save(model, tmp_path / "a.skops")
    sha_b = models.save(fitted(**overrides), tmp_path / "b.skops")
    assert sha_a == sha_b  # same data and params: byte-identical files
    loaded = models.load(tmp_path / "a.skops", expected_sha256=sha_a)
    np.testing.assert_array_equal(
        models.spam_scores(loaded, ["free prize", "lunch"]), models.spam_scores(model, ["free prize", "lunch"])
    )
    scores = models.spam_scores(loaded, ["win a free prize now", "see you at lunch"])
    assert scores[0] > scores[1]


def test_load_refuses_a_hash_mismatch(tmp_path: Path) -> None:
    sha = models.save(fitted(), tmp_path / "m.skops")
    with pytest.raises(UserError, match="does not match the recorded"):
        models.load(tmp_path / "m.skops", expected_sha256="0" * 64)
    assert models.load(tmp_path / "m.skops", expected_sha256=sha) is not None


def test_load_refuses_types_outside_the_allowlist(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=np.negative), path)
    with pytest.raises(UserError, match="refusing to load types not on the allowlist: .*FunctionTransformer"):
        models.load(path)


def test_load_refuses_a_pickle_and_a_missing_file(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UserError, match="not a readable skops model file"):
        models.load(path)
    with pytest.raises(UserError, match="model file not found"):
        models.load(tmp_path / "absent.skops")


def test_saved_zip_has_no_timestamps_or_memory_addresses(tmp_path: Path) -> None:
    models.save(fitted(), tmp_path / "m.skops")
    with zipfile.ZipFile(tmp_path / "m.skops") as z:
        assert {i.date_time for i in z.infolist()} == {io.ZIP_EPOCH}
        assert all(len(n.split(".")[0]) < 8 for n in z.namelist())
        assert b"_stop_words_id" not in z.read("schema.json")
