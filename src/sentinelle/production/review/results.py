"""The committed results of one revision: metrics, params, plot data and the model's size.

Everything is read from git (``git show REV:path``), so a fresh clone is enough: the headline
metrics and plot data under ``dvclive/evaluate/``, ``params.yaml``, ``settings.yaml`` and
``dvc.lock`` are committed. These are the files ``dvc metrics diff`` and ``dvc params diff``
compare. The counts of the confusion matrix come from its plot data. Every other test figure
(``dvclive/evaluate/details.json``, a DVC output) is read when it is at hand: in the working
tree, or in the DVC cache for a commit whose pipeline ran here. The target ``workspace``
reads the same files from the working tree, as ``dvc repro`` left them.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sentinelle import paths
from sentinelle.errors import UserError
from sentinelle.params import DEFAULT_PARAMS, DEFAULT_SETTINGS, YAMLError, load_yaml

log = logging.getLogger("sentinelle.production.review")

WORKSPACE = "workspace"
EVALUATE = paths.METRICS.as_posix()  # git paths: strings with "/"
DETAILS = paths.DETAILS.as_posix()
METRIC_FILES = (EVALUATE, DETAILS)
PLOT_DIR = paths.PLOTS.as_posix()
# name -> (file, key of the rows in the file or None for a bare list)
PLOT_FILES = {
    "roc": (f"{PLOT_DIR}/sklearn/roc.json", "roc"),
    "precision_recall": (f"{PLOT_DIR}/sklearn/precision_recall.json", "precision_recall"),
    "det": (f"{PLOT_DIR}/sklearn/det.json", "det"),
    "threshold": (f"{PLOT_DIR}/custom/threshold.json", None),
    "confusion": (f"{PLOT_DIR}/sklearn/confusion_matrix.json", None),
}
MODEL = paths.MODEL.as_posix()
MODEL_METADATA = paths.MODEL_METADATA.as_posix()


@dataclass(frozen=True)
class Revision:
    """A git revision (or the workspace) as the user named it and as it resolved."""

    name: str
    commit: str | None  # None: the working tree

    @property
    def label(self) -> str:
        return self.name if self.commit is None else f"{self.name} ({self.commit[:7]})"


@dataclass
class Results:
    rev: Revision
    metrics: dict[str, dict[str, float]]  # metrics file -> flattened key -> value
    params: dict[str, Any]  # flattened params.yaml and settings.yaml
    plots: dict[str, list[dict[str, Any]]]  # PLOT_FILES name -> rows
    model_md5: str | None
    model_bytes: int | None
    model_version: str | None  # from models/model.json, when it is at hand (workspace)
    missing: list[str] = field(default_factory=list)  # files this revision lacks
    counts: dict[str, int] = field(default_factory=dict)  # tp, fp, tn, fn, n_ham, n_spam

    @property
    def evaluate(self) -> dict[str, float]:
        """The headline metrics, with the confusion counts (``fp`` of ``n_ham``...)."""
        return {**self.counts, **self.metrics[EVALUATE]}


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60)
    except OSError as exc:
        raise UserError(f"cannot run git: {exc}") from None


def resolve(root: Path, name: str) -> Revision:
    """A git revision name (``main``, ``origin/main``, a SHA) or ``workspace``."""
    if name == WORKSPACE:
        return Revision(name, None)
    proc = _git(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    if proc.returncode != 0:
        raise UserError(
            f"{name!r} is not a git revision of {root.resolve()} "
            f"(a branch, tag or commit such as main or origin/main; or {WORKSPACE!r})"
        )
    return Revision(name, proc.stdout.decode().strip())


def read(root: Path, rev: Revision, path: str) -> str | None:
    """The text of ``path`` at ``rev``, or None when the revision has no such file."""
    if rev.commit is None:
        file = root / path
        return file.read_text(encoding="utf-8") if file.is_file() else None
    proc = _git(root, "show", f"{rev.commit}:{path}")
    return proc.stdout.decode("utf-8") if proc.returncode == 0 else None


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys; lists and scalars are values."""
    if not isinstance(node, dict):
        return {prefix: node} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON: {exc}") from None


def _out_entry(
    lock_text: str | None, where: str, stage: str, path: str
) -> tuple[str | None, int | None]:
    """md5 and size of an output of a stage in dvc.lock."""
    if lock_text is None:
        return None, None
    try:
        lock = yaml.safe_load(lock_text) or {}
    except yaml.YAMLError:
        raise UserError(f"{where}: dvc.lock is not valid YAML") from None
    outs = ((lock.get("stages") or {}).get(stage) or {}).get("outs") or []
    for out in outs:
        if isinstance(out, dict) and out.get("path") == path:
            return out.get("md5"), out.get("size")
    return None, None


def _cached(root: Path, md5: str | None) -> str | None:
    """A file's text from the local DVC cache (``.dvc/cache/files/md5/``), if it is there."""
    if not md5:
        return None
    file = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return file.read_text(encoding="utf-8") if file.is_file() else None


def confusion_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """tp, fp, tn, fn, n_ham and n_spam from the confusion matrix's plot data (one row per
    message: actual and predicted label)."""
    pairs = Counter((str(r.get("actual")), str(r.get("predicted"))) for r in rows)
    counts = {
        "tp": pairs[("spam", "spam")],
        "fp": pairs[("ham", "spam")],
        "tn": pairs[("ham", "ham")],
        "fn": pairs[("spam", "ham")],
    }
    return {
        **counts,
        "n_ham": counts["fp"] + counts["tn"],
        "n_spam": counts["tp"] + counts["fn"],
    }


def load(root: Path, rev: Revision) -> Results:
    """Read a revision's results; a revision without evaluate metrics is a ``UserError``."""
    missing = []
    metrics: dict[str, dict[str, float]] = {}
    lock_text = read(root, rev, "dvc.lock")
    for path in METRIC_FILES:
        text = read(root, rev, path)
        if text is None and path == DETAILS and rev.commit is not None:
            text = _cached(root, _out_entry(lock_text, rev.label, "evaluate", DETAILS)[0])
        if text is None:
            if path != DETAILS:  # an output of DVC's, not always at hand: the report says so
                missing.append(path)
            continue
        flat = flatten(_json(text, f"{rev.label}: {path}"))
        metrics[path] = {
            k: v for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
    if EVALUATE not in metrics:
        how = "the working tree" if rev.commit is None else f"git show {rev.commit[:7]}:{EVALUATE}"
        raise UserError(
            f"{rev.label}: no {EVALUATE} ({how} found nothing): run `dvc repro` "
            "(and commit dvclive/) or choose another revision"
        )
    params: dict[str, Any] = {}
    for name in (DEFAULT_PARAMS, DEFAULT_SETTINGS):
        text = read(root, rev, name.as_posix())
        if text is None:
            missing.append(name.as_posix())
            continue
        try:
            params.update(flatten(load_yaml(text) or {}))
        except YAMLError:
            raise UserError(f"{rev.label}: {name} is not valid YAML") from None
    plots: dict[str, list[dict[str, Any]]] = {}
    for name, (path, key) in PLOT_FILES.items():
        text = read(root, rev, path)
        if text is None:
            missing.append(path)
            continue
        data = _json(text, f"{rev.label}: {path}")
        plots[name] = data[key] if key else data
    md5, size = _out_entry(lock_text, rev.label, "train", MODEL)
    if md5 is None:
        missing.append(f"dvc.lock: {MODEL}")
    version = None
    meta = read(root, rev, MODEL_METADATA) if rev.commit is None else None
    if meta is not None:
        version = _json(meta, MODEL_METADATA).get("model_version")
    for path in missing:
        log.warning("%s: %s is missing", rev.label, path)
    counts = confusion_counts(plots["confusion"]) if "confusion" in plots else {}
    return Results(rev, metrics, params, plots, md5, size, version, missing, counts)
