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
    word = TfidfVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=p.word_ngrams, **common)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=p.char_ngrams, **common)
    features = {
        "word": word,
        "char": char,
        "union": FeatureUnion([("word", word), ("char", char)]),
    }[p.features]
    return Pipeline([("features", features), ("classifier", build_classifier(p, seed))])


def build_classifier(p: TrainParams, seed: int) -> Any:
    from sklearn import ensemble, linear_model, naive_bayes, svm
    from sklearn.calibration import CalibratedClassifierCV

    match p.classifier:
        case "linear_svm":
            # Calibrated so that its scores are probabilities like the others'.
            return CalibratedClassifierCV(
                svm.LinearSVC(C=p.C, class_weight=p.class_weight, random_state=seed),
                method="sigmoid",
                cv=5,
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
