"""The model: one scikit-learn Pipeline built from params, saved and loaded safely.

Models are saved with skops (never pickle) as a byte-reproducible zip, and
loaded only if every type in the file is on an explicit allowlist and the file's
SHA-256 matches the metadata written beside it by the train stage.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinelle import io
from sentinelle.errors import UserError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from sentinelle.params import TrainParams
    from sentinelle.solver import CountFile, Solver

MODEL_PATH = Path("models/model.skops")
METADATA_PATH = Path("models/model.json")

# Every type our pipelines are made of, as skops names them. Loading a file that
# holds any other type is refused.
ALLOWED_TYPES = frozenset(
    {
        "builtins.NoneType",
        "builtins.bool",
        "builtins.dict",
        "builtins.float",
        "builtins.int",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "numpy.dtype",
        "numpy.float32",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "numpy.random.mtrand.RandomState",
        "numpy.uint8",
        "scipy.sparse._csr.csr_matrix",
        "sentinelle.models.CompactTfidfVectorizer",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._sgd_fast.ModifiedHuber",
        "sklearn.linear_model._stochastic_gradient.SGDClassifier",
        "sklearn.naive_bayes.ComplementNB",
        "sklearn.naive_bayes.MultinomialNB",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.pipeline.Pipeline",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)


# Significant digits kept of the fitted sigmoid's parameters (see fit_sigmoid).
SIGMOID_DIGITS = 8


def _compact_vectorizer_class() -> type:
    """``CompactTfidfVectorizer``, created on first use so that importing this module stays light."""
    if "CompactTfidfVectorizer" in globals():
        return globals()["CompactTfidfVectorizer"]
    from sklearn.feature_extraction.text import TfidfVectorizer

    class _Compact(TfidfVectorizer):
        """A TfidfVectorizer whose saved state holds the vocabulary as two arrays.

        skops stores a dict as one JSON node per entry (tens of MB of schema for a
        char n-gram vocabulary, seconds to write and read); here the terms, in
        column order, are one UTF-8 byte array plus an offsets array.
        """

        def __getstate__(self) -> dict[str, Any]:
            state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself
            vocabulary = state.pop("vocabulary_", None)
            if vocabulary is not None:
                terms = sorted(vocabulary, key=vocabulary.__getitem__)
                if [vocabulary[t] for t in terms[:1]] not in ([], [0]) or len(terms) != max(vocabulary.values(), default=-1) + 1:
                    raise ValueError("vocabulary_ indices are not 0..n-1")
                encoded = [t.encode("utf-8") for t in terms]
                state["vocabulary_utf8_"] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
                state["vocabulary_offsets_"] = np.cumsum([0, *map(len, encoded)], dtype=np.int64)
                # skops tells objects apart by id(); keep these alive until the dump is
                # done, or the next vectoriser's arrays could reuse their ids.
                _KEEP_ALIVE.append(state)
            return state

        def _count_vocab(self, raw_documents: Any, fixed_vocab: bool) -> tuple[dict[str, int], Any]:
            """scikit-learn's n-gram counting, vectorised for the analyzers this project uses.

            The same vocabulary (up to insertion order, which fit_transform's sorting
            discards) and the same count matrix as ``CountVectorizer._count_vocab``;
            falls back to it for any setting the fast path does not cover.
            """
            docs = raw_documents if isinstance(raw_documents, list) else list(raw_documents)
            if not _fast_countable(self, docs):
                return super()._count_vocab(docs, fixed_vocab)
            return _fast_count(self, docs, fixed_vocab)

        def __setstate__(self, state: dict[str, Any]) -> None:
            state = dict(state)
            blob = state.pop("vocabulary_utf8_", None)
            offsets = state.pop("vocabulary_offsets_", None)
            if blob is not None:
                data = np.asarray(blob, dtype=np.uint8).tobytes()
                bounds = np.asarray(offsets, dtype=np.int64).tolist()
                state["vocabulary_"] = {
                    data[a:b].decode("utf-8"): i for i, (a, b) in enumerate(pairwise(bounds))
                }
            super().__setstate__(state)

    _Compact.__name__ = _Compact.__qualname__ = "CompactTfidfVectorizer"
    _Compact.__module__ = __name__
    globals()["CompactTfidfVectorizer"] = _Compact
    return _Compact


_KEEP_ALIVE: list[Any] = []


def __getattr__(name: str) -> Any:  # skops finds the class as sentinelle.models.CompactTfidfVectorizer
    if name == "CompactTfidfVectorizer":
        return _compact_vectorizer_class()
    raise AttributeError(name)


COUNT_CHUNK = 5_000  # documents counted at a time (bounds the temporary arrays)
COUNT_KEEP_NNZ = 2_000_000  # _count keeps pass-1 counts up to this size instead of counting twice


def _fast_countable(vectoriser: Any, docs: list[Any]) -> bool:
    """Whether ``_count_chunk`` gives exactly scikit-learn's counts for this vectoriser and these documents."""
    return (
        vectoriser.analyzer in ("char_wb", "word")
        and vectoriser.input == "content"
        and not vectoriser.lowercase
        and vectoriser.strip_accents is None
        and vectoriser.preprocessor is None
        and vectoriser.tokenizer is None
        and vectoriser.stop_words is None
        and all(type(d) is str for d in docs)
    )


def _fast_count(vectoriser: Any, docs: list[str], fixed_vocab: bool) -> tuple[dict[str, int], Any]:
    """Vectorised n-gram counts of ``docs`` (``CountVectorizer._count_vocab``), chunk by chunk."""
    import scipy.sparse as sp

    vocabulary: dict[str, int] = vectoriser.vocabulary_ if fixed_vocab else {}
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    blocks = [
        _count_chunk(vectoriser, docs[start : start + COUNT_CHUNK], vocabulary, fixed_vocab, cache)
        for start in range(0, len(docs), COUNT_CHUNK)
    ]
    if not fixed_vocab and not vocabulary:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    n_terms = len(vocabulary)
    blocks = [sp.csr_matrix((b.data, b.indices, b.indptr), shape=(b.shape[0], n_terms)) for b in blocks]
    X = sp.vstack(blocks, format="csr") if len(blocks) != 1 else blocks[0]
    if X.nnz > np.iinfo(np.int32).max:
        X.indices = X.indices.astype(np.int64)
        X.indptr = X.indptr.astype(np.int64)
    else:
        X.indices = X.indices.astype(np.int32, copy=False)
        X.indptr = X.indptr.astype(np.int32, copy=False)
    X.sort_indices()
    return vocabulary, X


def _count_chunk(
    vectoriser: Any, chunk: list[str], vocabulary: dict[str, int], fixed_vocab: bool,
    cache: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Any:  # fmt: skip
    """Counts of ``chunk`` (CSR, columns numbered by ``vocabulary``, which grows unless fixed).

    char_wb: the n-grams of a document are those of its white-space separated
    words, so each distinct word is cut into n-grams once (``_char_wb_ngrams`` of
    the word alone; ``cache`` keeps them across chunks) and the document counts are
    (documents x words) @ (words x n-grams), a sparse product. word: tokens are
    numbered, n-grams of consecutive token ids are numbered by pairing, and only
    the distinct n-grams are joined into strings.
    """
    import pandas as pd
    import scipy.sparse as sp

    if vectoriser.analyzer == "char_wb":
        pieces = [d.split() for d in chunk]
    else:
        findall = vectoriser.build_tokenizer()
        pieces = [findall(d) for d in chunk]
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    flat = np.fromiter((t for ts in pieces for t in ts), dtype=object, count=int(lengths.sum()))
    del pieces
    doc_of = np.repeat(np.arange(len(chunk), dtype=np.int64), lengths)
    codes, uniques = pd.factorize(flat)
    del flat
    if vectoriser.analyzer == "char_wb":
        block = _char_wb_block(vectoriser, codes, uniques, doc_of, len(chunk), vocabulary, fixed_vocab, cache)
    else:
        block = _word_block(vectoriser, codes, uniques, doc_of, lengths, vocabulary, fixed_vocab)
    block = sp.csr_matrix(block, dtype=vectoriser.__dict__.get("_count_dtype", vectoriser.dtype))
    block.indices = block.indices.astype(np.int32, copy=False)
    return block


def _grow(vocabulary: dict[str, int], terms: list[str], fixed_vocab: bool) -> np.ndarray:
    """Ids of ``terms`` in ``vocabulary`` (-1 if absent and fixed; otherwise added)."""
    if fixed_vocab:
        get = vocabulary.get
        return np.fromiter((get(t, -1) for t in terms), dtype=np.int64, count=len(terms))
    setdefault = vocabulary.setdefault
    return np.fromiter((setdefault(t, len(vocabulary)) for t in terms), dtype=np.int64, count=len(terms))


def _char_wb_block(
    vectoriser: Any, codes: np.ndarray, words: Any, doc_of: np.ndarray, n_docs: int,
    vocabulary: dict[str, int], fixed_vocab: bool, cache: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Any:  # fmt: skip
    import scipy.sparse as sp

    ngrams = vectoriser._char_wb_ngrams
    rows, cols, vals = [], [], []
    for i, word in enumerate(words.tolist() if hasattr(words, "tolist") else list(words)):
        hit = cache.get(word)
        if hit is None:
            grams: dict[str, int] = {}
            for g in ngrams(word):
                grams[g] = grams.get(g, 0) + 1
            ids = _grow(vocabulary, list(grams), fixed_vocab)
            counts = np.fromiter(grams.values(), dtype=np.int64, count=len(grams))
            keep = ids >= 0
            hit = cache[word] = (ids[keep], counts[keep])
        rows.append(np.full(len(hit[0]), i, dtype=np.int64))
        cols.append(hit[0])
        vals.append(hit[1])
    n_terms = len(vocabulary)
    concat = (lambda a: np.concatenate(a)) if rows else (lambda a: np.empty(0, dtype=np.int64))
    W = sp.csr_matrix((concat(vals), (concat(rows), concat(cols))), shape=(len(words), n_terms), dtype=np.int32)
    D = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.int32), (doc_of, codes)), shape=(n_docs, len(words)), dtype=np.int32
    )
    return (D @ W).tocsr()


def _word_block(
    vectoriser: Any, codes: np.ndarray, tokens: Any, doc_of: np.ndarray, lengths: np.ndarray,
    vocabulary: dict[str, int], fixed_vocab: bool,
) -> Any:  # fmt: skip
    import pandas as pd
    import scipy.sparse as sp

    min_n, max_n = vectoriser.ngram_range
    tokens = np.asarray(tokens, dtype=object)
    n_docs = len(lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(codes), dtype=np.int64) - starts  # index of each token in its doc
    doc_rows, term_cols = [], []
    gram = codes.astype(np.int64)  # id of the n-gram ending at each token, for n = 1, 2, ...
    gram_parts: list[np.ndarray] = [np.arange(len(tokens), dtype=np.int64).reshape(-1, 1)]  # tokens of each id
    for n in range(1, max_n + 1):
        if n > 1:
            valid = position >= n - 1
            key = np.full(len(codes), -1, dtype=np.int64)
            prev = np.roll(gram, 1)
            key[valid] = prev[valid] * len(tokens) + codes[valid]
            new_ids, uniq = pd.factorize(key[valid])
            gram = np.full(len(codes), -1, dtype=np.int64)
            gram[valid] = new_ids
            first_tokens = gram_parts[-1][uniq // len(tokens)]
            gram_parts.append(np.hstack([first_tokens, (uniq % len(tokens)).reshape(-1, 1)]))
        if n < min_n:
            continue
        present = gram >= 0
        parts = gram_parts[-1]
        terms = [" ".join(row) for row in tokens[parts].tolist()] if n > 1 else tokens.tolist()
        ids = _grow(vocabulary, terms, fixed_vocab)
        cols = ids[gram[present]]
        keep = cols >= 0
        doc_rows.append(doc_of[present][keep])
        term_cols.append(cols[keep])
    rows = np.concatenate(doc_rows) if doc_rows else np.empty(0, dtype=np.int64)
    cols = np.concatenate(term_cols) if term_cols else np.empty(0, dtype=np.int64)
    X = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n_docs, len(vocabulary)))
    X.sum_duplicates()
    return X


def build_pipeline(p: TrainParams, seed: int) -> Pipeline:
    """Vectoriser(s) + classifier, as one Pipeline, from the ``train`` params."""
    from sklearn.pipeline import FeatureUnion, Pipeline

    TfidfVectorizer = _compact_vectorizer_class()

    common: dict[str, Any] = dict(
        lowercase=False,  # the normaliser already case-folds
        min_df=p.min_df,
        max_features=p.max_features,
        sublinear_tf=p.sublinear_tf,
        # float64, as the classifiers want it: no float32 -> float64 copy of every matrix
        dtype=np.float64,
    )
    word = TfidfVectorizer(**_analyzer(p, "word"), **common)
    char = TfidfVectorizer(**_analyzer(p, "char"), **common)
    features = {
        "word": word,
        "char": char,
        "union": FeatureUnion([("word", word), ("char", char)]),
    }[p.features]
    return Pipeline([("features", features), ("classifier", build_classifier(p, seed))])


def _analyzer(p: TrainParams, kind: str) -> dict[str, Any]:
    """How a vectoriser cuts text: word n-grams of the normaliser's tokens, or char_wb n-grams."""
    if kind == "word":
        return {"analyzer": "word", "token_pattern": r"\S+", "ngram_range": p.word_ngrams}
    return {"analyzer": "char_wb", "ngram_range": p.char_ngrams}


def build_classifier(p: TrainParams, seed: int) -> Any:
    # Each branch imports only its own module (sklearn.ensemble alone costs ~0.3 s).
    match p.classifier:
        case "linear_svm":
            from sklearn.calibration import CalibratedClassifierCV

            # Calibrated (Platt sigmoid on out-of-fold decision values, one SVM refit
            # on all data) so that its scores are probabilities like the others'.
            return CalibratedClassifierCV(
                _raw_classifier(p, seed), method="sigmoid", cv=p.cv_folds, ensemble=False
            )
        case "logreg":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=p.C, class_weight=p.class_weight, solver="liblinear", max_iter=1000)
        case "complement_nb":
            from sklearn.naive_bayes import ComplementNB

            return ComplementNB(alpha=p.alpha)
        case "multinomial_nb":
            from sklearn.naive_bayes import MultinomialNB

            return MultinomialNB(alpha=p.alpha)
        case "sgd":
            from sklearn.linear_model import SGDClassifier

            return SGDClassifier(
                loss="modified_huber", alpha=p.alpha, class_weight=p.class_weight, random_state=seed
            )
        case "random_forest":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(
                n_estimators=p.n_estimators,
                max_depth=p.max_depth,
                class_weight=p.class_weight,
                n_jobs=p.n_jobs,
                random_state=seed,
            )
    raise AssertionError(p.classifier)  # unreachable: params.py allows only the above


def _raw_classifier(p: TrainParams, seed: int) -> Any:
    """The classifier whose scores choose the threshold: the SVM before calibration."""
    from sklearn import svm

    if p.classifier == "linear_svm":
        return svm.LinearSVC(C=p.C, class_weight=p.class_weight, random_state=seed)
    return build_classifier(p, seed)


def _raw_scores(classifier: Any, X: Any) -> np.ndarray:
    """Spam decision values (SVM) or spam probabilities (every other classifier)."""
    spam = list(classifier.classes_).index("spam")
    if hasattr(classifier, "predict_proba"):
        return classifier.predict_proba(X)[:, spam]
    decision = classifier.decision_function(X)
    return decision if spam == 1 else -decision


def out_of_fold_scores(
    p: TrainParams, seed: int, texts: Any, labels: Any, groups: Any | None = None
) -> np.ndarray:
    """Raw spam scores of every training message from a model that never saw it.

    Stratified ``p.cv_folds``-fold CV (shuffled with ``seed``; with ``groups``, e.g.
    the canonical text, a group stays in one fold as ingest keeps near-duplicates
    on one side of the split) of the whole pipeline:
    in each fold the TF-IDF vocabulary and weights are fitted on the training folds
    only, exactly as ``build_pipeline`` would, but computed from one n-gram count
    pass over all texts instead of one per fold (when ``max_features`` is set the
    per-fold vectorisers are fitted for real, since the cut depends on the fold).
    Scores are on the raw scale of ``_raw_scores``; ``probability_threshold`` maps a
    threshold on that scale to the fitted model's ``spam_scores``.
    """
    return _fit(p, seed, texts, labels, groups, jobs=2, final=False).oof


@dataclass
class Trained:
    """A fitted model with what the train stage reports about it."""

    model: Pipeline
    oof: np.ndarray  # raw out-of-fold spam scores (scale of ``_raw_scores``)
    train_scores: np.ndarray  # ``spam_scores`` of the training texts
    n_features: int


def train(p: TrainParams, seed: int, texts: Any, labels: Any, groups: Any | None = None, jobs: int = 2) -> Trained:
    """Fit the pipeline and the out-of-fold scores that choose its threshold, in one go.

    The same model as ``build_pipeline(p, seed).fit(texts, labels)`` and the same
    scores as ``out_of_fold_scores``, but the n-gram counts of the training texts are
    computed once (vectorised, see ``_count``) and shared by the final vectorisers
    and every fold. The linear SVM (the default) is fitted by ``sentinelle.linear``
    straight from those counts, fold and final fits ``jobs`` at a time in threads,
    with no TF-IDF matrix built; its Platt sigmoid is fitted on the out-of-fold
    decision values (the grouped CV that also chooses the threshold) instead of a
    second, ungrouped internal CV of ``CalibratedClassifierCV``; see ``fit_sigmoid``.
    Other classifiers get per-fold TF-IDF matrices and scikit-learn's ``fit``, one
    fold at a time.
    """
    return _fit(p, seed, texts, labels, groups, jobs=jobs, final=True)


def _fit(p: TrainParams, seed: int, texts: Any, labels: Any, groups: Any | None, jobs: int, final: bool) -> Trained:
    from contextlib import nullcontext

    from sentinelle.solver import CountFile, Solver

    texts = np.asarray(texts, dtype=object)
    labels = np.asarray(labels)
    file = CountFile()
    svm = p.classifier == "linear_svm" and p.max_features is None
    # From SOLVER_MIN_TEXTS on, the SVM is fitted in a solver process, which starts first:
    # it loads numba while this one counts.
    with file, Solver(file) if svm and len(texts) >= SOLVER_MIN_TEXTS else nullcontext() as solver:
        pipeline = build_pipeline(p, seed)
        vectorisers, counts = _count(pipeline, texts, jobs, file)
        n_terms = [len(v.vocabulary_) for v in vectorisers]
        idf = np.split(smooth_idf(counts.df, len(texts)), np.cumsum(n_terms)[:-1])
        for vectoriser, weights in zip(vectorisers, idf, strict=True):
            _set_idf(vectoriser, weights)
        splits = list(_splits(p, seed, texts, labels, groups))
        if svm:
            return _fit_svm(p, seed, pipeline, solver, counts, labels, splits, jobs, final)
        return _fit_in_process(p, seed, pipeline, counts, texts, labels, splits, idf, final)


def _fit_in_process(
    p: TrainParams, seed: int, pipeline: Pipeline, counts: Combined, texts: np.ndarray, labels: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]], idf: list[np.ndarray], final: bool,
) -> Trained:  # fmt: skip
    """Every classifier but the linear SVM of ``_fit_svm`` (so also the SVM with ``max_features``):
    per-fold TF-IDF matrices and scikit-learn's ``fit``."""
    oof = np.empty(len(texts), dtype=np.float64)
    make = _fold_featuriser(p, seed, texts, counts if p.max_features is None else None)
    for train_idx, test_idx in splits:
        X_train, X_test = make(train_idx, test_idx)
        classifier = _raw_classifier(p, seed).fit(X_train, labels[train_idx])
        del X_train
        oof[test_idx] = _raw_scores(classifier, X_test)
    if not final:
        return Trained(pipeline, oof, np.empty(0), 0)
    weights = np.concatenate(idf)
    X = _tfidf_rows(counts.matrix, np.arange(len(weights)), weights, counts.column_block, counts.n_blocks, p.sublinear_tf)
    classifier = _raw_classifier(p, seed).fit(X, labels)
    if p.classifier == "linear_svm":
        classifier = calibrated_svm(pipeline[-1], classifier, *fit_sigmoid(oof, labels == classifier.classes_[1]))
    pipeline.steps[-1] = (pipeline.steps[-1][0], classifier)
    spam = list(classifier.classes_).index("spam")
    return Trained(pipeline, oof, classifier.predict_proba(X)[:, spam], X.shape[1])


def smooth_idf(df: np.ndarray, n_documents: int) -> np.ndarray:
    """scikit-learn's smoothed idf, ``log((1 + n) / (1 + df)) + 1``, in float64."""
    return np.log((1 + n_documents) / (1 + df.astype(np.float64))) + 1


def _set_idf(vectoriser: Any, idf: np.ndarray) -> None:
    """The rest of what ``TfidfVectorizer.fit`` does after counting: its idf weights."""
    from sklearn.feature_extraction.text import TfidfTransformer

    vectoriser._tfidf = TfidfTransformer(
        norm=vectoriser.norm, use_idf=vectoriser.use_idf,
        smooth_idf=vectoriser.smooth_idf, sublinear_tf=vectoriser.sublinear_tf,
    )  # fmt: skip
    vectoriser._tfidf.idf_ = idf
    vectoriser._tfidf.n_features_in_ = len(idf)


# From this many training texts the SVM is fitted in a solver process (see sentinelle.solver):
# the stage's process then never holds the count matrix, numba or the fits' arrays.
# Below it, starting that process (~0.2 s) costs more than the memory it saves.
SOLVER_MIN_TEXTS = 20_000


def _fit_svm(
    p: TrainParams, seed: int, pipeline: Pipeline, solver: Solver | None, counts: Combined,
    labels: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], jobs: int, final: bool,
) -> Trained:  # fmt: skip
    """The linear SVM's folds and final fit: ``sentinelle.linear.fit_folds`` on ``counts``, in
    ``solver``'s process, or in this one if None."""
    from sklearn.svm import LinearSVC

    classes = np.unique(labels)
    positive = labels == classes[1]
    sign = 1.0 if classes[1] == "spam" else -1.0  # raw scores are spam scores
    sizes = np.bincount(counts.column_block, minlength=counts.n_blocks).tolist()
    job = dict(
        positive=positive, splits=splits, min_df=p.min_df, C=p.C, class_weight=p.class_weight, seed=seed,
        jobs=jobs, weight=np.concatenate([v.idf_ for v in _vectorisers(pipeline)]) if final else None,
    )  # fmt: skip
    if solver is None:
        from sentinelle import linear

        results, whole = linear.fit_folds(linear.Counts.from_csr(counts.matrix, sizes, p.sublinear_tf), **job)
    else:
        results, whole = solver.fit(indptr=counts.indptr, block_sizes=sizes, sublinear_tf=p.sublinear_tf, **job)

    oof = np.empty(len(labels), dtype=np.float64)
    for (_, test_idx), scores in zip(splits, results, strict=True):
        oof[test_idx] = sign * scores
    if not final:
        return Trained(pipeline, oof, np.empty(0), 0)
    w, b, iterations, decision = whole
    svm = _raw_classifier(p, seed)
    assert isinstance(svm, LinearSVC)
    svm.classes_, svm.coef_, svm.intercept_ = classes, w.reshape(1, -1), np.array([b])
    svm.n_features_in_, svm.n_iter_ = len(w), iterations
    classifier = calibrated_svm(pipeline[-1], svm, *fit_sigmoid(sign * oof, positive))
    pipeline.steps[-1] = (pipeline.steps[-1][0], classifier)
    [calibrator] = classifier.calibrated_classifiers_[0].calibrators
    proba = calibrator.predict(decision)  # P(classes[1])
    return Trained(pipeline, oof, proba if sign > 0 else 1 - proba, len(w))


def _vectorisers(pipeline: Pipeline) -> list[Any]:
    features = pipeline[0]
    return [v for _, v in features.transformer_list] if hasattr(features, "transformer_list") else [features]


def _fold_featuriser(p: TrainParams, seed: int, texts: np.ndarray, counts: Combined | None = None) -> Any:
    """A function ``(train_idx, test_idx) -> (X_train, X_test)``: features fitted on train_idx only.

    ``counts``: the n-gram counts of ``texts``, if already computed (their
    vocabulary must hold every n-gram a fold could keep).
    """
    if p.max_features is not None:

        def refit(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[Any, Any]:
            features = build_pipeline(p, seed)[0]
            return features.fit_transform(texts[train_idx]), features.transform(texts[test_idx])

        return refit
    if counts is None:
        counts = _count(build_pipeline(p, seed), texts)[1]

    def from_counts(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[Any, Any]:
        train_counts = counts.matrix[train_idx]
        df = np.bincount(train_counts.indices, minlength=counts.matrix.shape[1])
        keep = df >= p.min_df
        remap = np.where(keep, np.cumsum(keep) - 1, -1)
        idf = smooth_idf(df[keep], len(train_idx))
        block = counts.column_block[keep]
        X_train = _tfidf_rows(train_counts, remap, idf, block, counts.n_blocks, p.sublinear_tf)
        del train_counts
        return X_train, _tfidf_rows(counts.matrix[test_idx], remap, idf, block, counts.n_blocks, p.sublinear_tf)

    return from_counts


def _tfidf_rows(
    counts: Any, remap: np.ndarray, idf: np.ndarray, block: np.ndarray, n_blocks: int, sublinear_tf: bool
) -> Any:
    """TF-IDF (float64 CSR) of count rows, keeping the columns ``remap`` maps to >= 0,
    L2-normalised per row within each vectoriser's columns (``block`` of each kept column)."""
    import scipy.sparse as sp

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


@dataclass
class Combined:
    """The count matrices of several vectorisers side by side, in ``file`` (see
    ``sentinelle.solver``), with each column's vectoriser and document frequency."""

    file: CountFile
    indptr: np.ndarray
    column_block: np.ndarray
    n_blocks: int
    df: np.ndarray

    @cached_property
    def matrix(self) -> Any:
        """The CSR matrix, mapped into this process."""
        return self.file.csr(self.indptr, len(self.column_block))


def _count(
    pipeline: Pipeline, texts: np.ndarray, jobs: int = 1, file: CountFile | None = None
) -> tuple[list[Any], Combined]:
    """The pipeline's vectorisers, fitted (vocabulary only), and their counts of ``texts`` side by side.

    Counts are small integers, kept as uint16 (float32 if one exceeds 65,535) with
    int32 columns: 6 bytes per non-zero, in ``file`` (a new ``CountFile`` if None),
    which this process does not map. On the fast path (``_fast_countable``, no
    ``max_features``) pass 1, one process per vectoriser, counts ``COUNT_CHUNK`` texts
    at a time for the document frequencies; terms below ``min_df`` (or above
    ``max_df``) are dropped and the rest numbered alphabetically, as scikit-learn
    does; pass 2 counts each chunk's kept terms again, the chunks over ``jobs``
    forked processes, and each writes its chunk straight into the file. So no
    process holds the matrix: only a chunk each.
    """
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    from sentinelle.processes import forked_map
    from sentinelle.solver import CountFile

    file = file or CountFile()
    vectorisers = _vectorisers(pipeline)
    docs = texts.tolist()
    if any(v.max_features is not None or not _fast_countable(v, docs) for v in vectorisers):
        blocks = []
        for vectoriser in vectorisers:
            vectoriser._count_dtype = np.float32
            try:
                blocks.append(CountVectorizer.fit_transform(vectoriser, docs))
            finally:
                del vectoriser._count_dtype
        matrix = sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
        matrix.sort_indices()
        df = np.bincount(matrix.indices, minlength=matrix.shape[1])
        file.reserve(np.array([matrix.nnz]), matrix.data.dtype, matrix.indices.dtype)
        file.write(0, matrix.data, matrix.indices)
        file.layout["nnz"][0] = matrix.nnz
        column_block = _column_block([b.shape[1] for b in blocks])
        return vectorisers, Combined(file, matrix.indptr, column_block, len(blocks), df)

    n = len(texts)
    budget = COUNT_KEEP_NNZ // len(vectorisers)

    def first_pass(k: int) -> tuple[dict[str, int], dict[str, Any], np.ndarray, int, list[int], list[Any]]:
        """Pass 1 for vectoriser ``k``: its vocabulary of kept terms, numbered alphabetically as
        scikit-learn does; its char_wb word cache, renumbered; the document frequency of each
        kept term (their sum is the non-zeros it adds) and its largest count; each chunk's
        non-zeros before pruning (room to reserve for it); its first chunks' counts,
        renumbered, while they are small (pass 2 then need not count them again)."""
        vectoriser = vectorisers[k]
        vocabulary: dict[str, int] = {}
        cache: dict[str, Any] = {}
        df = np.zeros(0, dtype=np.int64)
        blocks, seen_nnz, max_count, chunk_nnz = [], 0, 0, []
        for start in range(0, n, COUNT_CHUNK):
            block = _count_chunk(vectoriser, docs[start : start + COUNT_CHUNK], vocabulary, False, cache)
            chunk_df = np.bincount(block.indices, minlength=block.shape[1])
            chunk_df[: len(df)] += df
            df = chunk_df
            max_count = max(max_count, int(block.data.max(initial=0)))
            chunk_nnz.append(block.nnz)
            seen_nnz += block.nnz
            if seen_nnz <= budget:
                blocks.append(block)
        if not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        low = vectoriser.min_df if isinstance(vectoriser.min_df, int) else vectoriser.min_df * n
        high = vectoriser.max_df if isinstance(vectoriser.max_df, int) else vectoriser.max_df * n
        keep = (df >= low) & (df <= high)
        terms = list(vocabulary)  # insertion order is id order
        del vocabulary
        kept = sorted((terms[i], i) for i in np.flatnonzero(keep))
        if not kept:
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        remap = np.full(len(df), -1, dtype=np.int64)
        remap[[i for _, i in kept]] = np.arange(len(kept))
        # char_wb: every word's n-grams are cached; renumber them instead of cutting them again.
        for word, (ids, counts) in cache.items():
            new = remap[ids]
            cache[word] = (new[new >= 0], counts[new >= 0])
        blocks = [_renumbered(b, remap, len(kept)) for b in blocks]
        kept_df = df[[i for _, i in kept]]
        return {term: j for j, (term, _) in enumerate(kept)}, cache, kept_df, max_count, chunk_nnz, blocks

    # The vectorisers' first passes are independent: one process each, as cores allow.
    caches, kept_blocks, dfs, max_count, capacity = [], [], [], 0, np.int64(0)
    for vectoriser, (vocabulary, cache, df_k, max_k, nnz_k, blocks_k) in zip(
        vectorisers, forked_map(first_pass, len(vectorisers), jobs), strict=True
    ):
        vectoriser.vocabulary_ = vocabulary
        vectoriser.fixed_vocabulary_ = False
        caches.append(cache)
        kept_blocks.append(blocks_k)
        dfs.append(df_k)
        max_count = max(max_count, max_k)
        capacity = capacity + np.array(nnz_k, dtype=np.int64)
    df = np.concatenate(dfs)
    nnz = int(df.sum())
    # Pass 2: each chunk's counts of the kept terms, straight into the file: pass 1's
    # if it kept them (small data), otherwise counted again, chunks over the cores.
    sizes = [len(v.vocabulary_) for v in vectorisers]
    index = np.int32 if max(nnz, sum(sizes)) < 2**31 else np.int64
    # Counts are small integers: uint16 (2 bytes) when they fit, else float32 (exact to 2**24).
    file.reserve(capacity, np.uint16 if max_count <= np.iinfo(np.uint16).max else np.float32, index)
    starts = list(range(0, n, COUNT_CHUNK))

    def chunk_block(c: int) -> Any:
        chunk = docs[starts[c] : starts[c] + COUNT_CHUNK]
        pieces = []
        for k, vectoriser in enumerate(vectorisers):
            if c < len(kept_blocks[k]):
                pieces.append(kept_blocks[k][c])
                kept_blocks[k][c] = None
            else:
                pieces.append(_count_chunk(vectoriser, chunk, vectoriser.vocabulary_, True, caches[k]))
        block = sp.hstack(pieces, format="csr") if len(pieces) > 1 else pieces[0]
        block.sort_indices()
        return block

    def write_chunk(c: int) -> np.ndarray:
        """Chunk ``c``'s counts into the file; its documents' numbers of non-zeros."""
        block = chunk_block(c)
        file.write(c, block.data, block.indices)
        return np.diff(block.indptr)

    serial = min(len(blocks) for blocks in kept_blocks)
    row_nnz = list(forked_map(write_chunk, len(starts), jobs, serial))
    file.layout["nnz"][:] = [int(r.sum()) for r in row_nnz]
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(row_nnz))]).astype(index)
    assert indptr[-1] == nnz
    return vectorisers, Combined(file, indptr, _column_block(sizes), len(sizes), df)


def _renumbered(block: Any, remap: np.ndarray, n_columns: int) -> Any:
    """``block`` with column ``j`` moved to ``remap[j]``, and the columns mapped to -1 dropped."""
    import scipy.sparse as sp

    cols = remap[block.indices]
    keep = cols >= 0
    indptr = np.concatenate([[0], np.cumsum(keep)])[block.indptr]
    return sp.csr_matrix((block.data[keep], cols[keep], indptr), shape=(block.shape[0], n_columns))


def _column_block(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)


def _splits(p: TrainParams, seed: int, texts: np.ndarray, labels: np.ndarray, groups: Any | None) -> Any:
    from sklearn.model_selection import StratifiedKFold

    if groups is None:
        return StratifiedKFold(p.cv_folds, shuffle=True, random_state=seed).split(texts, labels)
    return grouped_stratified_folds(labels, groups, p.cv_folds, seed)


def grouped_stratified_folds(labels: Any, groups: Any, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` ``(train_idx, test_idx)`` folds; each group wholly in one fold, classes balanced.

    A group counts for the label of its first message (as in ``dataset.split``).
    Per class, groups are shuffled with ``seed``, ordered largest first, and each is
    put in the fold that holds the fewest messages of that class so far. Linear in
    the number of messages (scikit-learn's StratifiedGroupKFold takes minutes for
    a million singleton groups) and as balanced as the group sizes allow.
    """
    import heapq

    import pandas as pd

    labels = np.asarray(labels)
    group = pd.factorize(np.asarray(groups, dtype=object))[0]
    sizes = np.bincount(group)
    first = np.full(len(sizes), -1, dtype=np.int64)
    first[group[::-1]] = np.arange(len(group))[::-1]
    group_label = labels[first]
    rng = np.random.default_rng(seed)
    fold_of_group = np.empty(len(sizes), dtype=np.int64)
    for label in np.unique(group_label):
        members = np.flatnonzero(group_label == label)
        members = members[rng.permutation(len(members))]
        members = members[np.argsort(-sizes[members], kind="stable")]
        heap = [(0, f) for f in range(k)]
        for g, size in zip(members.tolist(), sizes[members].tolist(), strict=True):
            count, f = heapq.heappop(heap)
            fold_of_group[g] = f
            heapq.heappush(heap, (count + size, f))
    fold = fold_of_group[group]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def fit_sigmoid(decision: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Platt's sigmoid ``P(positive) = 1 / (1 + exp(a * decision + b))``, as scikit-learn fits it.

    Same targets (Platt's prior-smoothed 0/1) and log loss as
    ``sklearn.calibration._sigmoid_calibration``, but minimised by Newton's method to
    machine precision with element-wise numpy sums (no BLAS, no scipy optimiser,
    whose dot products differ in the last bits between BLAS kernels and CPUs) and
    rounded to ``SIGMOID_DIGITS`` significant digits, so the fitted parameters, and
    with them the model file, are the same on every machine.
    """
    f = np.asarray(decision, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n1 = float(np.count_nonzero(y))
    n0 = len(y) - n1
    t = np.where(y, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    scale = max(1.0, float(np.abs(f).max())) if len(f) else 1.0
    f = f / scale

    def loss(a: float, b: float) -> float:
        z = a * f + b  # P = expit(-z)
        return float(np.sum(t * np.logaddexp(0, z) + (1 - t) * np.logaddexp(0, -z)))

    a, b = 0.0, float(np.log((n0 + 1) / (n1 + 1)))
    current = loss(a, b)
    for _ in range(100):
        prob = np.exp(-np.logaddexp(0, a * f + b))
        g = t - prob  # d loss / d z
        w = prob * (1 - prob) + 1e-12
        ga, gb = float(np.sum(g * f)), float(np.sum(g))
        haa, hab, hbb = float(np.sum(w * f * f)), float(np.sum(w * f)), float(np.sum(w))
        det = haa * hbb - hab * hab
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        step = 1.0
        while step > 1e-10:
            candidate = loss(a - step * da, b - step * db)
            if candidate <= current:
                break
            step /= 2
        a, b, current = a - step * da, b - step * db, min(candidate, current)
        if abs(step * da) <= 1e-13 * max(1.0, abs(a)) and abs(step * db) <= 1e-13 * max(1.0, abs(b)):
            break
    return float(f"{a / scale:.{SIGMOID_DIGITS}g}"), float(f"{b:.{SIGMOID_DIGITS}g}")


def calibrated_svm(template: Any, svm: Any, a: float, b: float) -> Any:
    """``template`` (an unfitted ``CalibratedClassifierCV``) as if fitted: ``svm`` with the sigmoid ``a``, ``b``."""
    from sklearn.calibration import _CalibratedClassifier, _SigmoidCalibration

    calibrator = _SigmoidCalibration()
    calibrator.a_, calibrator.b_ = a, b
    template.calibrated_classifiers_ = [
        _CalibratedClassifier(svm, [calibrator], classes=svm.classes_, method="sigmoid")
    ]
    template.classes_ = svm.classes_
    template.n_features_in_ = svm.n_features_in_
    return template


def probability_threshold(model: Pipeline, raw_threshold: float) -> float:
    """The ``spam_scores`` threshold that flags exactly what ``raw_threshold`` flags.

    For the calibrated SVM the raw scale is the SVM decision value and the fitted
    sigmoid maps it (monotonically) to a probability; for every other classifier
    the raw scale already is the probability.
    """
    from sklearn.calibration import CalibratedClassifierCV

    classifier = model[-1]
    if not isinstance(classifier, CalibratedClassifierCV):
        return float(raw_threshold)
    [calibrated] = classifier.calibrated_classifiers_
    [calibrator] = calibrated.calibrators
    return float(calibrator.predict(np.array([raw_threshold], dtype=np.float64))[0])


def top_features(model: Pipeline, n: int) -> dict[str, list[tuple[str, float]]]:
    """The ``n`` features that push hardest towards spam and towards ham.

    Linear models: their weights; naive Bayes: the log-probability ratio; random
    forest: its (unsigned) impurity importances, all under "spam".
    """
    from sklearn.calibration import CalibratedClassifierCV

    names = model[:-1].get_feature_names_out()
    classifier = model[-1]
    if isinstance(classifier, CalibratedClassifierCV):
        classifier = classifier.calibrated_classifiers_[0].estimator
    spam = list(classifier.classes_).index("spam")
    if hasattr(classifier, "coef_"):
        weights = classifier.coef_[0] * (1 if spam == 1 else -1)
    elif hasattr(classifier, "feature_log_prob_"):
        weights = classifier.feature_log_prob_[spam] - classifier.feature_log_prob_[1 - spam]
    else:
        order = np.argsort(-classifier.feature_importances_, kind="stable")[:n]
        return {"spam": [(str(names[i]), float(classifier.feature_importances_[i])) for i in order], "ham": []}
    weights = np.asarray(weights, dtype=np.float64)
    top_spam = np.argsort(-weights, kind="stable")[:n]
    top_ham = np.argsort(weights, kind="stable")[:n]
    return {
        "spam": [(str(names[i]), float(weights[i])) for i in top_spam],
        "ham": [(str(names[i]), float(weights[i])) for i in top_ham],
    }


SCORE_CHUNK = 5_000  # texts transformed at a time by spam_scores (bounds the TF-IDF matrix)


def spam_scores(model: Pipeline, texts: Any) -> np.ndarray:
    """Probability-like spam score in [0, 1] for each normalised text, ``SCORE_CHUNK`` texts at a time."""
    spam = list(model.classes_).index("spam")
    texts = texts if isinstance(texts, list) else list(texts)
    parts = [model.predict_proba(texts[i : i + SCORE_CHUNK])[:, spam] for i in range(0, len(texts), SCORE_CHUNK)]
    return np.concatenate(parts) if parts else np.empty(0)


def save(model: Pipeline, path: Path = MODEL_PATH) -> str:
    """Save with skops as a reproducible zip, atomically; return the file's SHA-256."""
    sio = _skops_io()
    from sklearn.feature_extraction.text import CountVectorizer

    # scikit-learn remembers id(stop_words) in fitted vectorisers, a memory address
    # that changes from run to run; without it the vectoriser simply re-checks its
    # stop words once, so drop it for reproducible bytes.
    for _, step in _walk(model):
        if isinstance(step, CountVectorizer):
            step.__dict__.pop("_stop_words_id", None)
    with io.atomic_path(path) as tmp:
        try:
            sio.dump(model, tmp)
        finally:
            _KEEP_ALIVE.clear()
        io.normalise_zip(tmp)
    return io.sha256_file(path)


def _skops_io() -> Any:
    """``skops.io``, imported without its list of every scikit-learn estimator.

    At import, skops builds its default trusted-type list by importing every
    scikit-learn module (``sklearn.utils.all_estimators``; ~1 s, pytest included).
    This project never relies on that list: ``load`` passes the exact types found
    in the file after checking them against ``ALLOWED_TYPES``.
    """
    import sys

    if "skops.io" not in sys.modules:
        import sklearn.utils

        all_estimators = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda *args, **kwargs: []
        try:
            import skops.io
        finally:
            sklearn.utils.all_estimators = all_estimators
    import skops.io

    return skops.io


def _walk(estimator: Any, name: str = "") -> Any:
    """Yield ``(name, estimator)`` for an estimator and everything nested in it."""
    yield name, estimator
    for child_name, child in getattr(estimator, "steps", None) or getattr(estimator, "transformer_list", []):
        yield from _walk(child, f"{name}/{child_name}" if name else child_name)


def load(path: Path = MODEL_PATH, expected_sha256: str | None = None) -> Pipeline:
    """Load a model file, refusing unknown types and (if given) a hash mismatch."""
    sio = _skops_io()

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found (run `dvc repro` or `dvc pull`)")
    if expected_sha256 is not None:
        actual = io.sha256_file(path)
        if actual != expected_sha256:
            raise UserError(
                f"{path}: SHA-256 {actual[:12]}… does not match the recorded {expected_sha256[:12]}…; "
                "refusing to load a model that is not the one trained"
            )
    found = types_in(path)
    refused = sorted(found - ALLOWED_TYPES)
    if refused:
        raise UserError(f"{path}: refusing to load types not on the allowlist: {', '.join(refused)}")
    return sio.load(path, trusted=sorted(found))


def types_in(path: Path) -> set[str]:
    """Every type and function a skops file names, as ``module.name``.

    skops itself trusts many types by default (any scikit-learn estimator, numpy
    functions); we check every node of the file's schema against our own list.
    """
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic[:1] == b"\x80" and magic[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise UserError(
            f"{path}: not a readable skops model file: it is a pickle (pickle/joblib), which can run "
            "any code when loaded, so it is never loaded; save models with skops"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a readable skops model file: {exc}") from None
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_with_metadata(
    path: Path = MODEL_PATH, metadata_path: Path = METADATA_PATH
) -> tuple[Pipeline, dict[str, Any]]:
    """Load a model and its metadata, checking the file hash recorded by train."""
    if not Path(metadata_path).is_file():
        raise UserError(f"{metadata_path}: model metadata not found (run `dvc repro` or `dvc pull`)")
    meta = io.read_json(metadata_path)
    return load(path, expected_sha256=meta["model_sha256"]), meta
