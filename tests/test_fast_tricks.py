"""The fast engine's kept tricks, each with a test that fails when it stops working
(their measured gains: docs/performance.md, "The fast engine's tricks at 100K")."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

import tiny_model
from helpers import ROOT
from sentinelle.modeling.fast import counting
from sentinelle.modeling.fast.vectorizer import CompactTfidfVectorizer
from sentinelle.modeling.pipeline import parts
from sentinelle.modeling.sklearn_engine import features as spec_features
from sentinelle.params import load
from sentinelle.text.normaliser import Normaliser

PARAMS = load(ROOT / "params.yaml")
TEXTS = Normaliser(**vars(PARAMS.preprocess)).many(tiny_model.SPAM + tiny_model.HAM)


def test_the_default_features_never_fall_back_to_scikit_learns_counting(monkeypatch) -> None:
    """The vectorised n-gram kernels (``ngrams``) count for the default params: in training
    (``counting.count``), and when a fitted vectoriser transforms (evaluate, serve, score)."""

    def scikit_learns_counting(*args: object, **kwargs: object) -> None:
        raise AssertionError("CountVectorizer._count_vocab ran: the vectorised kernels did not")

    monkeypatch.setattr(CountVectorizer, "_count_vocab", scikit_learns_counting)
    counts = counting.count(
        parts(spec_features(PARAMS.train, CompactTfidfVectorizer)), np.asarray(TEXTS, dtype=object)
    )
    assert counts.matrix.shape[0] == len(TEXTS) and counts.matrix.nnz > 0

    features = spec_features(PARAMS.train, CompactTfidfVectorizer)
    fitted = features.fit_transform(TEXTS)
    np.testing.assert_allclose(features.transform(TEXTS).toarray(), fitted.toarray(), atol=1e-12)


def _vectoriser_states(schema: object) -> list[dict[str, object]]:
    found, stack = [], [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("__class__") == "CompactTfidfVectorizer":
                found.append(node["content"]["content"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def test_the_vocabulary_is_saved_as_two_arrays_not_one_node_per_term(tmp_path: Path) -> None:
    """skops would write a dict as one JSON node per term; the vectoriser saves its vocabulary
    as a UTF-8 byte array and an offsets array instead (smaller file, faster save and load)."""
    path = tiny_model.make(tmp_path, classifier="linear_svm")
    schema = json.loads(zipfile.ZipFile(path).read("schema.json"))
    states = _vectoriser_states(schema)
    assert len(states) == 2  # word and char n-grams
    for state in states:
        assert "vocabulary_" not in state
        assert state["vocabulary_utf8_"]["__class__"] == "ndarray"
        assert state["vocabulary_offsets_"]["__class__"] == "ndarray"


@pytest.mark.parametrize("min_texts", [1, 10**9])
def test_numba_is_loaded_only_by_the_process_that_fits(min_texts: int) -> None:
    """From ``SOLVER_MIN_TEXTS`` the SVM fits in a solver process: the stage's process never
    loads numba and LLVM; below it, the stage's process fits and loads them."""
    code = (
        "import sys\n"
        "import pandas as pd\n"
        "from sentinelle.modeling import fast\n"
        "from sentinelle.modeling.fast import training\n"
        "from sentinelle.params import load\n"
        f"training.SOLVER_MIN_TEXTS = {min_texts}\n"
        "import tiny_model\n"
        "texts = tiny_model.SPAM + tiny_model.HAM\n"
        "labels = ['spam'] * len(tiny_model.SPAM) + ['ham'] * len(tiny_model.HAM)\n"
        "frame = pd.DataFrame({'text': texts, 'label': labels, 'group': texts})\n"
        "params = load()\n"
        "import dataclasses\n"
        "params = dataclasses.replace(\n"
        "    params, train=dataclasses.replace(params.train, min_df=1, cv_folds=3)\n"
        ")\n"
        "fast.fit(frame, params)\n"
        "print('numba' in sys.modules)\n"
    )
    env_path = f"{ROOT / 'src'}:{ROOT / 'tests'}"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == ("False" if min_texts == 1 else "True")
