"""The typed schema of ``params.yaml`` and ``settings.yaml``, and their validation.

Defaults live in the two files (``params.yaml``: what runs are compared by; ``settings.yaml``:
the rest, see ``COMPARED``); this module owns the types and allowed ranges and which file
holds each key. Both are read as DVC reads them (ruamel.yaml, YAML 1.2). Every key must be
present, known and in its own file: anything else is an error, reported as one line that
names the file, the key, the bad value and what is allowed.

Each section is a frozen dataclass. A field's type says what YAML value it takes
(``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, ``X | None``,
``tuple[int, int]``), and ``Annotated[..., Range(...)]`` bounds a number.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from ruamel.yaml import YAML, YAMLError

from sentinelle.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")
DEFAULT_SETTINGS = Path("settings.yaml")


@dataclass(frozen=True)
class Range:
    """Bounds for a number; ``None`` means unbounded on that side."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return " and ".join(f"{op} {_number(v)}" for op, v in bounds if v is not None)

    def admits(self, x: float) -> bool:
        return (
            (self.ge is None or x >= self.ge)
            and (self.gt is None or x > self.gt)
            and (self.le is None or x <= self.le)
            and (self.lt is None or x < self.lt)
        )


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Pattern:
    """A regular expression a string must match in full, and its description."""

    regex: str
    description: str


Seed = Annotated[int, Range(ge=0, le=2**32 - 1)]
Positive = Annotated[float, Range(gt=0)]
Fraction = Annotated[float, Range(gt=0, lt=1)]
Count = Annotated[int, Range(ge=1)]
NgramRange = Annotated[tuple[int, int], Range(ge=1, le=10)]
HamFpr = Annotated[float, Range(ge=0, lt=1)]
# Named operating points besides `default` (= train.max_ham_fpr): name -> max ham FPR.
PointName = Annotated[str, Pattern(r"(?!default\Z)[a-z][a-z0-9_]{0,31}", "a lower-case name")]
OperatingPoints = dict[PointName, HamFpr]


@dataclass(frozen=True)
class BaseParams:
    seed: Seed


Policy = Literal["fail", "drop"]
# A column: its header name, or its 1-based position (as `cut -f` counts). `-S key=2` gives an
# int; the same digits as a string are a name when the header has it, else a position.
Column = str | Annotated[int, Range(ge=1)]
# `auto`, or one character; a tab may be written "\t" (YAML), tab or \t (as `-S` passes it).
Delimiter = Annotated[str, Pattern(r"auto|tab|\\t|[^\n\r\"]", "'auto' or a single character")]
# Label values as YAML gives them: `[spam, 1, true]` holds a str, an int and a bool.
LabelValues = tuple[str | int | bool, ...]


@dataclass(frozen=True)
class IngestParams:
    source: str
    test_size: Annotated[float, Range(ge=0.05, le=0.5)]
    format: Literal["auto", "uci", "kaggle", "csv", "tsv", "jsonl", "parquet", "xlsx", "xls", "ods"]
    encoding: str | None
    member: str | None
    delimiter: Delimiter
    header: Literal["auto"] | bool
    sheet: str | Annotated[int, Range(ge=1)] | None
    text_column: Column
    label_column: Column
    spam_labels: LabelValues
    ham_labels: LabelValues
    sha256: Annotated[str, Pattern(r"[0-9a-f]{64}", "64 lower-case hex digits")] | None
    endpoint_url: Annotated[str, Pattern(r"https?://\S+", "an http(s):// URL")] | None
    timeout: Annotated[float, Range(gt=0, le=3600)]
    retries: Annotated[int, Range(ge=0, le=10)]
    max_bytes: Annotated[int, Range(ge=1)]
    max_chars: Annotated[int, Range(ge=1)]
    min_rows: Annotated[int, Range(ge=2)]
    on_unknown_label: Policy
    on_empty_text: Policy
    on_nul: Policy
    on_too_long: Policy
    on_conflict: Literal["fail", "drop", "majority"]
    feedback: str | None
    on_feedback_conflict: Literal["feedback", "drop", "majority"]
    max_feedback_shift: Annotated[float, Range(gt=0, le=1)]
    feedback_max_per_reporter: Annotated[int, Range(ge=0)]
    feedback_similarity: Annotated[float, Range(gt=0, le=1)]


@dataclass(frozen=True)
class PreprocessParams:
    placeholders: bool
    stem: bool
    remove_stopwords: bool


@dataclass(frozen=True)
class TrainParams:
    engine: Literal["auto", "sklearn", "fast"]
    features: Literal["word", "char", "union"]
    word_ngrams: NgramRange
    char_ngrams: NgramRange
    min_df: Count
    max_features: Annotated[int, Range(ge=1)] | None
    sublinear_tf: bool
    classifier: Literal[
        "linear_svm", "logreg", "complement_nb", "multinomial_nb", "sgd", "random_forest"
    ]
    C: Positive
    alpha: Positive
    class_weight: Literal["balanced"] | None
    n_estimators: Annotated[int, Range(ge=1, le=5000)]
    max_depth: Annotated[int, Range(ge=1)] | None
    n_jobs: Annotated[int, Range(ge=1, le=64)]
    max_ham_fpr: HamFpr
    operating_points: OperatingPoints
    cv_folds: Annotated[int, Range(ge=2, le=20)]


@dataclass(frozen=True)
class EvaluateParams:
    top_errors: Annotated[int, Range(ge=0, le=1000)]
    bootstrap: Annotated[int, Range(ge=0, le=100000)]
    obfuscation_rate: Annotated[float, Range(ge=0, le=1)]


Share = Annotated[float, Range(ge=0, le=1)]


@dataclass(frozen=True)
class GateParams:
    """The rules ``sentinelle gate`` checks before a model may ship (no stage reads them)."""

    min_recall: Share
    max_ham_fpr: Share
    max_recall_drop: Share
    max_mcc_drop: Annotated[float, Range(ge=0, le=2)]
    max_model_mb: Positive
    min_throughput: Positive | None


@dataclass(frozen=True)
class MonitorParams:
    bins: Annotated[int, Range(ge=2, le=100)]
    max_score_psi: Positive
    ks_alpha: Fraction
    flagged_confidence: Fraction
    max_descriptor_psi: Positive
    max_unseen_increase: Annotated[float, Range(gt=0, le=1)]
    max_estimate_drop: Annotated[float, Range(gt=0, le=1)]


# Where per-message work runs (sentinelle.compute): never in Dask, a cluster on this
# machine, or an existing cluster's scheduler.
Scheduler = Annotated[
    str,
    Pattern(
        r"none|local|(tcp|tls|ws|wss)://\S+",
        "'none', 'local' or a scheduler address such as tcp://host:8786",
    ),
]
MemorySize = Annotated[
    str, Pattern(r"auto|[1-9][0-9]*(\.[0-9]+)?\s*([KMGT]i?B)", "'auto' or a size such as 4GiB")
]


@dataclass(frozen=True)
class ComputeParams:
    scheduler: Scheduler
    workers: Annotated[int, Range(ge=1, le=1024)] | None
    memory_per_worker: MemorySize
    partition_rows: Annotated[int, Range(ge=1000)]
    min_rows: Annotated[int, Range(ge=0)]


@dataclass(frozen=True)
class Params:
    base: BaseParams
    ingest: IngestParams
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams
    monitor: MonitorParams
    gate: GateParams
    compute: ComputeParams


def describe(tp: Any) -> str:
    """What a type admits, in words for an error message."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *meta = typing.get_args(tp)
        ranges = [m.describe() for m in meta if isinstance(m, Range)]
        ranges += [m.description for m in meta if isinstance(m, Pattern)]
        return describe(inner) + (f" {' and '.join(ranges)}" if ranges else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if origin is tuple and typing.get_args(tp)[-1] is Ellipsis:
        return f"a non-empty list of ({describe(typing.get_args(tp)[0])})"
    if origin is tuple:
        args = typing.get_args(tp)
        return f"a list of {len(args)} {describe(args[0]).removeprefix('an ')}s [low, high]"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"a mapping of ({describe(key)}, not 'default') to ({describe(value)})"
    if tp is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[tp]


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp``, or raise ``ValueError`` if it does not fit."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *meta = typing.get_args(tp)
        # A pattern alone decides which strings fit (a tab delimiter is whitespace).
        if inner is str and any(isinstance(m, Pattern) for m in meta):
            if not isinstance(value, str):
                raise ValueError
            out = value
        else:
            out = coerce(value, inner)
        for m in meta:
            if isinstance(m, Range):
                for x in out if isinstance(out, tuple) else (out,):
                    if not m.admits(x):
                        raise ValueError
            if isinstance(m, Pattern) and not re.fullmatch(m.regex, out):
                raise ValueError
        return out
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise ValueError
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple and typing.get_args(tp)[-1] is Ellipsis:
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError
        return tuple(coerce(v, typing.get_args(tp)[0]) for v in value)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError
        out = tuple(coerce(v, a) for v, a in zip(value, args, strict=True))
        if list(out) != sorted(out):
            raise ValueError
        return out
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError
        key, item = typing.get_args(tp)
        return {coerce(k, key): coerce(v, item) for k, v in value.items()}
    if tp is type(None):
        if value is None:
            return None
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ValueError
    if tp is str:
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError
    raise TypeError(f"unsupported schema type {tp!r}")


def _unknown_key(where: str, key: str, allowed: list[str]) -> str:
    hint = difflib.get_close_matches(key, allowed, n=1)
    dym = f" (did you mean '{where}{hint[0]}'?)" if hint else ""
    return f"unknown key '{where}{key}'{dym}; allowed: {', '.join(allowed)}"


def _build(cls: type, data: Any, where: str, source: Callable[[str], str]) -> Any:
    """``cls`` from ``data``; ``source(key)`` names the file a key's problem is reported in."""
    if not isinstance(data, dict):
        name = where.rstrip(".") or "<top>"
        raise UserError(f"{source(name)}: '{name}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in hints:
            raise UserError(f"{source(f'{where}{key}')}: {_unknown_key(where, str(key), names)}")
    values = {}
    for name in names:
        key = f"{where}{name}"
        if name not in data:
            raise UserError(f"{source(key)}: missing key '{key}' ({describe(hints[name])})")
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, data[name], f"{key}.", source)
            continue
        try:
            values[name] = coerce(data[name], tp)
        except ValueError:
            raise UserError(
                f"{source(key)}: {key} = {data[name]!r} is invalid: must be {describe(tp)}"
            ) from None
    return cls(**values)


def parse(data: Any, source: str | Callable[[str], str] = "params.yaml") -> Params:
    """Validate a parsed params mapping (the keys of both files) and return the typed params;
    ``source`` names the file in error messages (or, given a key, the file that holds it)."""
    return _build(Params, data, "", source if callable(source) else lambda _: source)


# ------------------------------------------------------------------ the two files

# params.yaml holds what runs are compared by: DVC shows every key of it as a column of
# `dvc exp show` and of the VS Code experiments table, and `dvc exp run -S key=value` sets it.
# These sections and keys live there, except those of RUN_ONLY; every other key lives in
# settings.yaml (`dvc exp run -S settings.yaml:key=value`).
COMPARED = ("base", "ingest.source", "ingest.test_size", "ingest.feedback", "preprocess", "train")
# Settings that change no output (where work runs, downloads, the monitor and gate limits): a
# change reruns no stage. The other settings are written to data/params.ok by check_params, on
# which ingest and evaluate depend, so a change to one of them reruns those stages.
RUN_ONLY = (
    "train.n_jobs",
    "ingest.endpoint_url",
    "ingest.timeout",
    "ingest.retries",
    "compute.scheduler",
    "compute.workers",
    "compute.memory_per_worker",
    "compute.min_rows",
    "monitor",
    "gate",
)
# Settings that change how the model is computed, not what it decides: the two engines are
# tested to give the same verdicts (tests/test_engines.py), so they are no column of
# `dvc exp show`; as every setting that changes an output, they go to data/params.ok, on
# which train depends too.
SAME_MODEL = ("train.engine",)


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def home(key: str) -> Path:
    """The file a dotted key (``train.C``, ``gate``) lives in: params.yaml or settings.yaml."""
    compared = _under(key, COMPARED) and not _under(key, RUN_ONLY + SAME_MODEL)
    return DEFAULT_PARAMS if compared else DEFAULT_SETTINGS


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    """``section -> key -> value`` as ``section.key -> value`` (mappings such as
    ``train.operating_points`` stay values)."""
    return {f"{s}.{k}": v for s, values in data.items() for k, v in values.items()}


def split(data: dict[str, Any]) -> dict[Path, dict[str, dict[str, Any]]]:
    """A mapping of every key, as the two files hold it: ``{params.yaml: {...}, settings.yaml:
    {...}}``, each ``section -> key -> value`` in the order of ``data``."""
    out: dict[Path, dict[str, dict[str, Any]]] = {DEFAULT_PARAMS: {}, DEFAULT_SETTINGS: {}}
    for section, values in data.items():
        for name, value in values.items():
            out[home(f"{section}.{name}")].setdefault(section, {})[name] = value
    return out


def settings_path(params_path: Path) -> Path:
    """settings.yaml beside a params file (``--params tmp/custom.yaml``: tmp/settings.yaml)."""
    return Path(params_path).with_name(DEFAULT_SETTINGS.name)


def load_yaml(text: str) -> Any:
    """Parse YAML text as DVC parses params files (ruamel.yaml, safe, YAML 1.2): ``yes``,
    ``no``, ``on`` and ``off`` are strings, ``1e-5`` is a float, a repeated key is an error."""
    return YAML(typ="safe").load(text)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read params file: {exc.strerror}") from None
    try:
        data = load_yaml(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: must be a mapping of sections, got {data!r}")
    return data


def _check_placement(data: dict[str, Any], path: Path, own: Path) -> None:
    """Each key of ``data`` (read from ``path``, which plays the part of ``own``) lives there."""
    other = DEFAULT_SETTINGS if own == DEFAULT_PARAMS else DEFAULT_PARAMS
    hints = typing.get_type_hints(Params, include_extras=True)
    for section, values in data.items():
        if section not in hints:
            names = [f.name for f in dataclasses.fields(Params) if _has_keys_in(f.name, own)]
            raise UserError(f"{path}: {_unknown_key('', str(section), names)}")
        if not isinstance(values, dict):
            raise UserError(f"{path}: '{section}' must be a mapping, got {values!r}")
        fields = [f.name for f in dataclasses.fields(hints[section])]
        for name in values:
            key = f"{section}.{name}"
            if name not in fields:
                here = [n for n in fields if home(f"{section}.{n}") == own]
                raise UserError(f"{path}: {_unknown_key(f'{section}.', str(name), here)}")
            if home(key) != own:
                raise UserError(
                    f"{path}: {key} belongs in {other.name}, not {own.name} (params.yaml holds "
                    "what runs are compared by; settings.yaml the rest)"
                )


def _has_keys_in(section: str, file: Path) -> bool:
    cls = typing.get_type_hints(Params)[section]
    return any(home(f"{section}.{f.name}") == file for f in dataclasses.fields(cls))


def read(path: Path = DEFAULT_PARAMS, settings: Path | None = None) -> dict[str, Any]:
    """The keys of a params file and of its settings file (settings.yaml beside it) as one
    mapping, each key checked to be in its own file; not yet validated."""
    settings = settings or settings_path(path)
    merged: dict[str, Any] = {}
    for file, own in ((Path(path), DEFAULT_PARAMS), (settings, DEFAULT_SETTINGS)):
        data = _read(file)
        _check_placement(data, file, own)
        for section, values in data.items():
            merged.setdefault(section, {}).update(values)
    return merged


def load(
    path: Path = DEFAULT_PARAMS,
    overrides: dict[str, dict[str, Any]] | None = None,
    settings: Path | None = None,
) -> Params:
    """Read and validate a params file and its settings file (settings.yaml beside it), with
    ``overrides`` (section -> key -> value, e.g. from command-line flags) applied first;
    every problem is a one-line ``UserError`` naming the file."""
    settings = settings or settings_path(path)
    data = read(path, settings)
    files = {DEFAULT_PARAMS: str(path), DEFAULT_SETTINGS: str(settings)}
    flags = [f"{s}.{k}" for s, values in (overrides or {}).items() for k in values]
    for section, values in (overrides or {}).items():
        if isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}

    def source(key: str) -> str:
        where = files[home(key)]
        return f"{where} with {', '.join(flags)} from the command line" if flags else where

    return parse(data, source)


def output_settings(params: Params) -> dict[str, Any]:
    """The settings the stages' outputs depend on (settings.yaml less RUN_ONLY), as check_params
    writes them to data/params.ok: ``section.key -> value``, JSON types."""
    flat = _flat(json.loads(json.dumps(dataclasses.asdict(params))))
    return {
        k: v for k, v in flat.items() if home(k) == DEFAULT_SETTINGS and not _under(k, RUN_ONLY)
    }
