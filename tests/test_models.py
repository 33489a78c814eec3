"""Model building, reproducible skops save and the safe loader."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT
from sentinelle import compute, io
from sentinelle.errors import UserError
from sentinelle.modeling import inference, persistence
from sentinelle.modeling.fast import counting, solver, training
from sentinelle.modeling.fast.countfile import CountFile, write_piece
from sentinelle.modeling.fast.solver import Solver
from sentinelle.modeling.fast.training import build_pipeline
from sentinelle.modeling.fast.vectorizer import CompactTfidfVectorizer
from sentinelle.modeling.folds import grouped_stratified_folds
from sentinelle.modeling.pipeline import vectorisers as vectorisers_of
from sentinelle.params import load

PARAMS = load(ROOT / "params.yaml")
TEXTS = [
    "win a free prize now",
    "call _phone_ to claim _money_",
    "see you at lunch",
    "ok lar on my way",
] * 10
LABELS = ["spam", "spam", "ham", "ham"] * 10


def fitted(**overrides):
    p = dataclasses.replace(PARAMS.train, **overrides)
    return build_pipeline(p, seed=1).fit(TEXTS, LABELS)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"classifier": "logreg", "features": "word"},
        {"classifier": "complement_nb", "features": "char"},
        {"classifier": "multinomial_nb"},
        {"classifier": "sgd"},
        {
            "classifier": "random_forest",
            "features": "word",
            "max_features": 150,
            "n_estimators": 10,
        },
    ],
)
def test_every_classifier_saves_reproducibly_and_loads_with_the_allowlist(
    tmp_path: Path, overrides
) -> None:
    model = fitted(**overrides)
    sha_a = persistence.save(model, tmp_path / "a.skops")
    sha_b = persistence.save(fitted(**overrides), tmp_path / "b.skops")
    assert sha_a == sha_b  # same data and params: byte-identical files
    loaded = persistence.load(tmp_path / "a.skops", expected_sha256=sha_a)
    np.testing.assert_array_equal(
        inference.spam_scores(loaded, ["free prize", "lunch"]),
        inference.spam_scores(model, ["free prize", "lunch"]),
    )
    scores = inference.spam_scores(loaded, ["win a free prize now", "see you at lunch"])
    assert scores[0] > scores[1]


def test_load_refuses_a_hash_mismatch(tmp_path: Path) -> None:
    sha = persistence.save(fitted(), tmp_path / "m.skops")
    with pytest.raises(UserError, match="does not match the recorded"):
        persistence.load(tmp_path / "m.skops", expected_sha256="0" * 64)
    assert persistence.load(tmp_path / "m.skops", expected_sha256=sha) is not None


def test_load_refuses_types_outside_the_allowlist(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=np.negative), path)
    with pytest.raises(
        UserError, match=r"refusing to load types not on the allowlist: .*FunctionTransformer"
    ):
        persistence.load(path)


def test_load_refuses_a_pickle_and_a_missing_file(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UserError, match="not a readable skops model file"):
        persistence.load(path)
    with pytest.raises(UserError, match="model file not found"):
        persistence.load(tmp_path / "absent.skops")


def test_saved_zip_has_no_timestamps_or_memory_addresses(tmp_path: Path) -> None:
    persistence.save(fitted(), tmp_path / "m.skops")
    with zipfile.ZipFile(tmp_path / "m.skops") as z:
        assert {i.date_time for i in z.infolist()} == {io.ZIP_EPOCH}
        assert all(len(n.split(".")[0]) < 8 for n in z.namelist())
        assert b"_stop_words_id" not in z.read("schema.json")


@pytest.mark.parametrize(
    "settings",
    [
        {"analyzer": "char_wb", "ngram_range": (1, 6), "min_df": 1},
        {"analyzer": "char_wb", "ngram_range": (2, 4), "min_df": 2},
        {"analyzer": "word", "token_pattern": r"\S+", "ngram_range": (1, 2), "min_df": 2},
        {"analyzer": "word", "ngram_range": (2, 3), "min_df": 1},
    ],
)
def test_compact_vectorizer_counts_exactly_like_scikit_learn(settings) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(5)
    alphabet = list("ab cé\t\u00a0x1!")
    texts = [*TEXTS, "", "  ", "a", "a  b\tc\n d", "x" * 20, "日本 語 日本", "a a a a"]
    texts += ["".join(rng.choice(alphabet, rng.integers(0, 30))) for _ in range(200)]
    ours = CompactTfidfVectorizer(lowercase=False, sublinear_tf=True, **settings)
    theirs = TfidfVectorizer(lowercase=False, sublinear_tf=True, **settings)
    X, Y = ours.fit_transform(texts), theirs.fit_transform(texts)
    assert ours.vocabulary_ == theirs.vocabulary_
    np.testing.assert_array_equal(ours.idf_, theirs.idf_)
    for a, b in ((X, Y), (ours.transform(texts[::-1]), theirs.transform(texts[::-1]))):
        a.sort_indices(), b.sort_indices()
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)


def test_training_shortcut_gives_the_pipeline_fit_and_its_features() -> None:
    p = dataclasses.replace(PARAMS.train, min_df=1)
    trained = training.train(p, 1, TEXTS, LABELS, groups=list(range(len(TEXTS))))
    reference = build_pipeline(p, seed=1).fit(TEXTS, LABELS)
    # The same features: vocabularies, idf weights and TF-IDF rows as TfidfVectorizer.fit.
    for (_, ours), (_, theirs) in zip(
        trained.model[0].transformer_list, reference[0].transformer_list, strict=True
    ):
        assert ours.vocabulary_ == theirs.vocabulary_
        np.testing.assert_array_equal(ours.idf_, theirs.idf_)
    X, Y = trained.model[0].transform(TEXTS), reference[0].transform(TEXTS)
    assert (X != Y).nnz == 0
    # The same SVM problem, solved by sentinelle.modeling.fast.linear instead of liblinear: the same
    # optimum up to the solvers' tolerance, and an objective no worse.
    ours = trained.model[-1].calibrated_classifiers_[0].estimator
    theirs = reference[-1].calibrated_classifiers_[0].estimator
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=1e-4)
    y = np.where(np.asarray(LABELS) == "spam", 1.0, -1.0)

    def objective(svm) -> float:
        margin = np.maximum(0, 1 - y * svm.decision_function(X))
        return 0.5 * (float(np.sum(svm.coef_**2)) + float(svm.intercept_[0] ** 2)) + p.C * float(
            np.sum(margin**2)
        )

    assert objective(ours) <= objective(theirs) * (1 + 1e-6)
    # The training scores are what the saved pipeline gives for the training texts.
    np.testing.assert_allclose(
        trained.train_scores, inference.spam_scores(trained.model, TEXTS), rtol=0, atol=1e-12
    )


def test_grouped_folds_keep_groups_together_and_balance_classes() -> None:
    rng = np.random.default_rng(2)
    labels = np.where(rng.random(1000) < 0.2, "spam", "ham")
    groups = rng.integers(0, 700, 1000)
    labels = labels[np.unique(groups, return_index=True)[1]][
        np.unique(groups, return_inverse=True)[1]
    ]
    folds = grouped_stratified_folds(labels, groups, 5, seed=3)
    again = grouped_stratified_folds(labels, groups, 5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))  # seeded
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(1000))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        share = (labels[test] == "spam").mean()
        assert abs(share - (labels == "spam").mean()) < 0.03


@pytest.mark.parametrize("keep_nnz", [0, 150, 10**9])  # recount every chunk, some, none
@pytest.mark.parametrize("scheduler", ["none", "local"])
def test_two_pass_counting_gives_scikit_learns_counts(monkeypatch, keep_nnz, scheduler) -> None:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    rng = np.random.default_rng(5)
    words = ["win", "free", "prize", "call", "now", "ok", "lar", "see", "you", "é", "日本"]
    texts = np.array(
        [" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(120)], dtype=object
    )
    # Chunks of 7 here (a Dask worker counts in its own chunks): pass 2 starts after the
    # chunks pass 1 kept, in pieces of 20 documents, as tasks of a local cluster or here.
    monkeypatch.setattr(counting, "COUNT_CHUNK", 7)
    monkeypatch.setattr(counting, "PASS2_DOCS", 20)
    monkeypatch.setattr(counting, "COUNT_KEEP_NNZ", keep_nnz)
    p = dataclasses.replace(PARAMS.train, min_df=2)
    vectorisers = vectorisers_of(build_pipeline(p, seed=1))
    returned = []  # what pass-2 tasks send back (from a worker, on a cluster)
    real_map = counting.ordered_map

    def recording(func, items, n, *shared):
        for out in real_map(func, items, n, *shared):
            if func is counting._second_pass:
                returned.append(out)
            yield out

    monkeypatch.setattr(counting, "ordered_map", recording)
    with compute.session(compute.Settings(scheduler, min_rows=0)):
        counts = counting.count(vectorisers, texts)
        assert (compute._active is not None) == (scheduler == "local")
    assert bool(returned) == (keep_nnz < 10**9)  # pass 1 kept every chunk at 10**9
    if returned:  # a task counts PASS2_DOCS texts; here a piece is one chunk (train's peak)
        assert max(len(row_nnz) for _, row_nnz in returned) == (7 if scheduler == "none" else 20)
    for piece, row_nnz in returned:
        assert row_nnz.dtype == np.int32
        if scheduler == "none":  # as the file stores them, 6 bytes a non-zero (not 12)
            assert (piece[0].dtype, piece[1].dtype) == (np.uint16, np.int32)
        else:  # local workers wrote them beside the file, which copied them in
            assert [path.parent for path in piece] == [counts.file.folder] * 2
            assert not any(path.exists() for path in piece)
    expected = []
    for ours in vectorisers:
        theirs = CountVectorizer(
            **{k: v for k, v in ours.get_params().items() if k in CountVectorizer().get_params()}
        )
        expected.append(theirs.fit_transform(texts))
        assert ours.vocabulary_ == theirs.vocabulary_
    expected = sp.hstack(expected, format="csr")
    expected.sort_indices()
    assert counts.matrix.dtype == np.uint16
    np.testing.assert_array_equal(counts.matrix.indptr, expected.indptr)
    np.testing.assert_array_equal(counts.matrix.indices, expected.indices)
    np.testing.assert_array_equal(counts.matrix.data, expected.data)
    np.testing.assert_array_equal(
        counts.df, np.bincount(expected.indices, minlength=expected.shape[1])
    )
    assert counts.file.nnz == expected.nnz


def test_the_solver_process_fits_the_same_model(monkeypatch, tmp_path) -> None:
    p = dataclasses.replace(PARAMS.train, min_df=1)
    groups = list(range(len(TEXTS)))
    here = training.train(p, 1, TEXTS, LABELS, groups=groups)
    requests = []
    real_fit = solver.Solver.fit
    monkeypatch.setattr(
        solver.Solver, "fit", lambda self, **job: requests.append(job) or real_fit(self, **job)
    )
    monkeypatch.setattr(training, "SOLVER_MIN_TEXTS", 1)
    there = training.train(p, 1, TEXTS, LABELS, groups=groups)
    assert len(requests) == 1  # the fits ran in the solver process
    np.testing.assert_array_equal(there.oof, here.oof)
    np.testing.assert_array_equal(there.train_scores, here.train_scores)
    assert persistence.save(there.model, tmp_path / "there.skops") == persistence.save(
        here.model, tmp_path / "here.skops"
    )


def test_a_failing_solver_process_fails_the_fit_and_an_idle_one_exits(capfd) -> None:
    with CountFile() as file, Solver(file) as process:
        file.start(2, np.uint16, np.int32)
        file.append(np.array([1, 1]), np.array([0, 1]))
        file.finish()
        split = (np.array([0]), np.array([1]))
        with pytest.raises(
            RuntimeError, match=r"the SVM solver process failed \(exit code 1\); its error is above"
        ):
            process.fit(
                indptr=np.array([0, 1, 2]),
                block_sizes=[2],
                sublinear_tf=True,
                positive=np.array([], dtype=bool),
                splits=[split],
                min_df=1,
                weight=None,
                C=1.0,
                class_weight=None,
                seed=0,
                jobs=1,
            )  # one label for two rows: the solver fails
    assert "IndexError" in capfd.readouterr().err
    with CountFile() as file, Solver(file) as idle:
        pass  # the stage failed before asking
    assert idle._process.returncode == 0


def test_count_file_chunks_are_appended_in_order_and_checked() -> None:
    with CountFile() as file:
        file.start(5, np.uint16, np.int32)
        file.append(np.array([1, 2]), np.array([1, 2]))
        # A piece a worker wrote beside the file, in the file's types: copied in, then removed.
        piece = write_piece(
            file.folder, "p", np.array([7, 8, 9], np.uint16), np.arange(3, dtype=np.int32)
        )
        file.append_piece(piece)
        assert sorted(p.name for p in file.data_path.parent.iterdir()) == [
            "data.npy",
            "indices.npy",
        ]
        file.finish()
        matrix = file.csr(np.array([0, 2, 5]), n_columns=3)
        assert matrix.toarray().tolist() == [[0, 1, 2], [7, 8, 9]]
        file.start(1, np.uint16, np.int32)
        with pytest.raises(ValueError, match="chunk of 2 values past the 1"):
            file.append(np.array([1, 2]), np.array([0, 1]))
        with pytest.raises(ValueError, match="chunk of 1 values but 2 indices"):
            file.append(np.array([1]), np.array([0, 1]))
        piece = write_piece(file.folder, "q", np.array([1], np.uint16), np.array([0, 1], np.int32))
        with pytest.raises(ValueError, match="piece of 1 values but 2 indices"):
            file.append_piece(piece)
