"""The model: one scikit-learn Pipeline built from params, saved and loaded safely.

Models are saved with skops (never pickle) as a byte-reproducible zip, and
loaded only if every type in the file is on an explicit allowlist and the file's
SHA-256 matches the metadata written beside it by the train stage.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinelle import io
from sentinelle.errors import UserError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from sentinelle.params import TrainParams

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
        "scipy.sparse._csr.csr_matrix",
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


def build_pipeline(p: TrainParams, seed: int) -> Pipeline:
    """Vectoriser(s) + classifier, as one Pipeline, from the ``train`` params."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline

    common: dict[str, Any] = dict(
        lowercase=False,  # the normaliser already case-folds
        min_df=p.min_df,
        max_features=p.max_features,
        sublinear_tf=p.sublinear_tf,
        dtype=np.float32,
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
    from sklearn import ensemble, linear_model, naive_bayes
    from sklearn.calibration import CalibratedClassifierCV

    match p.classifier:
        case "linear_svm":
            # Calibrated (Platt sigmoid on out-of-fold decision values, one SVM refit
            # on all data) so that its scores are probabilities like the others'.
            return CalibratedClassifierCV(
                _raw_classifier(p, seed), method="sigmoid", cv=p.cv_folds, ensemble=False
            )
        case "logreg":
            return linear_model.LogisticRegression(
                C=p.C, class_weight=p.class_weight, solver="liblinear", max_iter=1000
            )
        case "complement_nb":
            return naive_bayes.ComplementNB(alpha=p.alpha)
        case "multinomial_nb":
            return naive_bayes.MultinomialNB(alpha=p.alpha)
        case "sgd":
            return linear_model.SGDClassifier(
                loss="modified_huber", alpha=p.alpha, class_weight=p.class_weight, random_state=seed
            )
        case "random_forest":
            return ensemble.RandomForestClassifier(
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
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    texts = np.asarray(texts, dtype=object)
    labels = np.asarray(labels)
    if groups is None:
        splits = StratifiedKFold(p.cv_folds, shuffle=True, random_state=seed).split(texts, labels)
    else:
        folds = StratifiedGroupKFold(p.cv_folds, shuffle=True, random_state=seed)
        splits = folds.split(texts, labels, np.asarray(groups))
    scores = np.empty(len(texts), dtype=np.float64)
    for train_idx, test_idx, X_train, X_test in _fold_features(p, seed, texts, splits):
        classifier = _raw_classifier(p, seed).fit(X_train, labels[train_idx])
        scores[test_idx] = _raw_scores(classifier, X_test)
    return scores


def _fold_features(p: TrainParams, seed: int, texts: np.ndarray, splits: Any) -> Any:
    """Yield ``(train_idx, test_idx, X_train, X_test)`` with features fitted on train_idx."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    if p.max_features is not None:
        for train_idx, test_idx in splits:
            features = build_pipeline(p, seed)[0]
            yield train_idx, test_idx, features.fit_transform(texts[train_idx]), features.transform(texts[test_idx])
        return
    blocks = [
        CountVectorizer(lowercase=False, dtype=np.float64, **_analyzer(p, kind)).fit_transform(texts)
        for kind in (("word", "char") if p.features == "union" else (p.features,))
    ]
    for train_idx, test_idx in splits:
        train_parts, test_parts = [], []
        for counts in blocks:
            train_counts = counts[train_idx]
            df = np.bincount(train_counts.indices, minlength=counts.shape[1])
            keep = np.flatnonzero(df >= p.min_df)
            idf = np.log((1 + len(train_idx)) / (1 + df[keep])) + 1  # smooth_idf, as sklearn
            for part, rows in ((train_parts, train_counts), (test_parts, counts[test_idx])):
                X = rows[:, keep].astype(np.float32)
                if p.sublinear_tf:
                    np.log(X.data, X.data)
                    X.data += 1
                part.append(normalize(X @ sp.diags(idf.astype(np.float32)), copy=False))
        yield train_idx, test_idx, sp.hstack(train_parts, format="csr"), sp.hstack(test_parts, format="csr")


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


def spam_scores(model: Pipeline, texts: Any) -> np.ndarray:
    """Probability-like spam score in [0, 1] for each normalised text."""
    return model.predict_proba(texts)[:, list(model.classes_).index("spam")]


def save(model: Pipeline, path: Path = MODEL_PATH) -> str:
    """Save with skops as a reproducible zip, atomically; return the file's SHA-256."""
    import skops.io as sio
    from sklearn.feature_extraction.text import CountVectorizer

    # scikit-learn remembers id(stop_words) in fitted vectorisers, a memory address
    # that changes from run to run; without it the vectoriser simply re-checks its
    # stop words once, so drop it for reproducible bytes.
    for _, step in _walk(model):
        if isinstance(step, CountVectorizer):
            step.__dict__.pop("_stop_words_id", None)
    with io.atomic_path(path) as tmp:
        sio.dump(model, tmp)
        io.normalise_zip(tmp)
    return io.sha256_file(path)


def _walk(estimator: Any, name: str = "") -> Any:
    """Yield ``(name, estimator)`` for an estimator and everything nested in it."""
    yield name, estimator
    for child_name, child in getattr(estimator, "steps", None) or getattr(estimator, "transformer_list", []):
        yield from _walk(child, f"{name}/{child_name}" if name else child_name)


def load(path: Path = MODEL_PATH, expected_sha256: str | None = None) -> Pipeline:
    """Load a model file, refusing unknown types and (if given) a hash mismatch."""
    import skops.io as sio

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
