"""Saving and loading models safely: skops (never pickle), an allowlist of types, a hash check.

Models are saved as a byte-reproducible zip, and loaded only if every type in the
file is on ``ALLOWED_TYPES`` and the file's SHA-256 matches the metadata written
beside it by the train stage.
"""

from __future__ import annotations

import json
import sys
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import sklearn.utils
from sklearn.pipeline import Pipeline

from sentinelle import io, paths
from sentinelle.errors import UserError
from sentinelle.modeling import metadata

MODEL_PATH = paths.MODEL
METADATA_PATH = paths.MODEL_METADATA
# The largest schema.json read from a model file: about 21 KB a tree, so a forest of 5,000
# trees (the most train.n_estimators allows) has about 105 MB; the linear models about 100 KB.
MAX_SCHEMA_BYTES = 160 << 20

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
        "sentinelle.modeling.fast.vectorizer.CompactTfidfVectorizer",
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
# Where our classes lived when older model files were saved -> where they live now. A file
# naming an old module loads with the class's current one; its bytes (and hash) stay as saved.
MOVED_MODULES = {"sentinelle.features.vectorizer": "sentinelle.modeling.fast.vectorizer"}


def save(model: Pipeline, path: Path = MODEL_PATH) -> str:
    """Save with skops as a reproducible zip, atomically; return the file's SHA-256."""
    sio = skops_io()
    features = model[0] if isinstance(model, Pipeline) else None
    for _, part in getattr(features, "transformer_list", [(None, features)]):
        # scikit-learn's TfidfVectorizer remembers id(stop_words), a memory address that
        # changes from run to run; without it the vectoriser re-checks its stop words once.
        if hasattr(part, "_stop_words_id"):
            del part._stop_words_id
    with io.atomic_path(path) as tmp:
        sio.dump(model, tmp)
        io.normalise_zip(tmp)
    return io.sha256_file(path)


def skops_io() -> Any:
    """``skops.io``, imported without its list of every scikit-learn estimator.

    At import, skops builds its default trusted-type list by importing every
    scikit-learn module (``sklearn.utils.all_estimators``; skops 0.16 offers no way around
    it). This project never relies on that list: ``load`` passes the exact types found in
    the file after checking them against ``ALLOWED_TYPES``. What it saves:
    docs/performance.md; ``tests/test_persistence.py`` fails if skops stops honouring this.
    """
    if "skops.io" not in sys.modules:
        all_estimators = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda *args, **kwargs: []
        try:
            import skops.io
        finally:
            sklearn.utils.all_estimators = all_estimators
    import skops.io

    return skops.io


def load(path: Path = MODEL_PATH, expected_sha256: str | None = None) -> Pipeline:
    """Load a model file, refusing unknown types and (if given) a hash mismatch."""
    sio = skops_io()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found (run `dvc repro` or `dvc pull`)")
    if expected_sha256 is not None:
        actual = io.sha256_file(path)
        if actual != expected_sha256:
            raise UserError(
                f"{path}: SHA-256 {actual[:12]}… does not match the recorded "
                f"{expected_sha256[:12]}…; "
                "refusing to load a model that is not the one trained"
            )
    found = types_in(path)
    current = {_current(name) for name in found}
    refused = sorted(current - ALLOWED_TYPES)
    if refused:
        raise UserError(
            f"{path}: refusing to load types not on the allowlist: {', '.join(refused)}"
        )
    try:
        if current == found:
            model = sio.load(path, trusted=sorted(found))
        else:
            model = sio.loads(_with_current_modules(path), trusted=sorted(current))
    # An untrusted file can make skops, zipfile, zlib or numpy fail in any way: one line.
    except Exception as exc:
        raise UserError(_unreadable(path, exc)) from None
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if sorted(classes) != ["ham", "spam"]:
        raise UserError(
            f"{path}: not a Sentinelle model: a fitted classifier of the classes ham and spam "
            f"is expected, found {type(model).__name__} with classes {classes[:4]}"
        )
    return model


def _current(type_name: str) -> str:
    """``module.name`` as it is imported today (``MOVED_MODULES``)."""
    module, _, name = type_name.rpartition(".")
    return f"{MOVED_MODULES.get(module, module)}.{name}"


def _with_current_modules(path: Path) -> bytes:
    """The skops file's bytes, its schema naming every moved class by its current module."""

    def rename(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("__module__") in MOVED_MODULES:
                node["__module__"] = MOVED_MODULES[node["__module__"]]
            for value in node.values():
                rename(value)
        elif isinstance(node, list):
            for value in node:
                rename(value)

    out = BytesIO()
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "schema.json":
                schema = json.loads(data)
                rename(schema)
                data = json.dumps(schema).encode()
            new.writestr(info, data)
    return out.getvalue()


def _unreadable(path: Path, exc: BaseException) -> str:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    if len(reason) > 120:
        reason = reason[:120] + "…"
    return f"{path}: not a readable skops model file ({reason}); {metadata.RESTORE}"


def types_in(path: Path) -> set[str]:
    """Every type and function a skops file names, as ``module.name``.

    skops itself trusts many types by default (any scikit-learn estimator, numpy
    functions); we check every node of the file's schema against our own list.
    """
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic[:1] == b"\x80" and magic[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise UserError(
            f"{path}: not a readable skops model file: it is a pickle (pickle/joblib), "
            "which can run "
            "any code when loaded, so it is never loaded; save models with skops"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo("schema.json").file_size
            if size > MAX_SCHEMA_BYTES:
                raise UserError(
                    f"{path}: not a readable skops model file: its schema.json is {size} bytes, "
                    f"over the {MAX_SCHEMA_BYTES}-byte limit; {metadata.RESTORE}"
                )
            schema = json.loads(archive.read("schema.json"))
    except UserError:
        raise
    # zipfile, zlib and json fail in many ways on a damaged file: one line.
    except Exception as exc:
        raise UserError(_unreadable(path, exc)) from None
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
    """Load a model and its metadata (checked: ``metadata.read``), checking the file hash
    recorded by train."""
    meta = metadata.read(metadata_path)
    return load(path, expected_sha256=meta["model_sha256"]), meta
