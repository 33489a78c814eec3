"""A model's metadata (``models/model.json``): read with a size bound and checked against one
schema before the model it describes is loaded.

The schema is the dataclasses below, checked with the params schema's types and ranges
(``sentinelle.params``): a field with a default may be absent. Every problem (too large, not
JSON, a missing key, a wrong type, a threshold outside [0, 1]) is one ``UserError`` line that
names the file, the key, the value and what is allowed. Keys the schema does not name are
kept as they are (train records more, e.g. the libraries), except in ``params.preprocess``,
whose keys are the normaliser's arguments.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from sentinelle.errors import UserError
from sentinelle.params import Pattern, Range, coerce, describe

MAX_BYTES = 1 << 20  # train writes about 2 KB; a larger file is refused before it is parsed
SHOWN = 60  # characters of a bad value quoted in an error
RESTORE = "restore the model's files with `dvc pull`, or retrain with `dvc repro`"

Probability = Annotated[float, Range(ge=0, le=1)]
Sha256 = Annotated[str, Pattern(r"[0-9a-f]{64}", "64 lower-case hex digits")]
Version = Annotated[str, Pattern(r"[\w.+-]{1,100}", "1 to 100 letters, digits, '.', '-', '_', '+'")]


@dataclass(frozen=True)
class OperatingPointMeta:
    threshold: Probability
    max_ham_fpr: Probability | None = None
    recall: Probability | None = None
    ham_fpr: Probability | None = None


@dataclass(frozen=True)
class PreprocessMeta:
    """The normaliser's arguments (``Normaliser``'s defaults for an absent one)."""

    placeholders: bool = True
    stem: bool = False
    remove_stopwords: bool = False


@dataclass(frozen=True)
class TrainMeta:
    classifier: str | None = None


@dataclass(frozen=True)
class ParamsMeta:
    preprocess: PreprocessMeta
    train: TrainMeta | None = None


@dataclass(frozen=True)
class ModelMeta:
    model_version: Version
    model_sha256: Sha256
    threshold: Probability
    params: ParamsMeta
    operating_points: dict[str, OperatingPointMeta] | None = None


CLOSED = (PreprocessMeta,)  # sections whose unknown keys are refused


def read(path: Path) -> dict[str, Any]:
    """The metadata at ``path``, read (at most ``MAX_BYTES``) and checked; a one-line
    ``UserError`` for anything else."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(
            f"{path}: model metadata not found (run `dvc repro` or `dvc pull`)"
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the model metadata: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise UserError(
            f"{path}: model metadata over {MAX_BYTES} bytes (train writes about 2 KB), "
            f"not read; {RESTORE}"
        )
    try:
        meta = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: model metadata is not UTF-8 (byte {data[exc.start]:#04x} at offset "
            f"{exc.start}); {RESTORE}"
        ) from None
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: model metadata is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}); {RESTORE}"
        ) from None
    except (ValueError, RecursionError) as exc:  # a huge integer, nesting too deep
        raise UserError(f"{path}: model metadata is not usable JSON ({exc}); {RESTORE}") from None
    check(meta, path)
    return meta


def check(meta: Any, path: Path | str) -> None:
    """Raise a one-line ``UserError`` naming ``path`` unless ``meta`` fits ``ModelMeta``."""
    _check(ModelMeta, meta, "", str(path))


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if _jsonable(value) else repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}… ({len(text)} characters)"


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _check(cls: type, data: Any, where: str, path: str) -> None:
    if not isinstance(data, dict):
        what = f"'{where.rstrip('.')}'" if where else "model metadata"
        raise UserError(f"{path}: {what} must be a JSON object, got {_shown(data)}; {RESTORE}")
    fields = dataclasses.fields(cls)
    if cls in CLOSED:
        names = [f.name for f in fields]
        for key in data:
            if key not in names:
                raise UserError(
                    f"{path}: unknown key '{where}{_shown(key)[1:-1]}'; allowed: "
                    f"{', '.join(names)}; {RESTORE}"
                )
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in fields:
        key, tp = f"{where}{f.name}", hints[f.name]
        if f.name not in data:
            if f.default is dataclasses.MISSING:
                raise UserError(f"{path}: missing key '{key}' ({_allowed(tp)}); {RESTORE}")
            continue
        value = data[f.name]
        inner = _section(tp)
        if inner is not None and value is not None:
            _check(inner, value, f"{key}.", path)
        elif typing.get_origin(_optional(tp)) is dict and value is not None:
            item = typing.get_args(_optional(tp))[1]
            if not isinstance(value, dict):
                raise UserError(
                    f"{path}: {key} = {_shown(value)} is invalid: must be a JSON object of "
                    f"name -> {{threshold, ...}}; {RESTORE}"
                )
            for name, point in value.items():
                _check(item, point, f"{key}.{name}.", path)
        else:
            try:
                coerce(value, tp)
            except ValueError:
                raise UserError(
                    f"{path}: {key} = {_shown(value)} is invalid: must be {_allowed(tp)}; {RESTORE}"
                ) from None


def _optional(tp: Any) -> Any:
    """``X`` of ``X | None``, else ``tp``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is not Annotated and len(args) == 1 else tp


def _section(tp: Any) -> type | None:
    inner = _optional(tp)
    return inner if dataclasses.is_dataclass(inner) else None


def _allowed(tp: Any) -> str:
    if (inner := _section(tp)) is not None:
        return f"a JSON object with {', '.join(f.name for f in dataclasses.fields(inner))}"
    if typing.get_origin(_optional(tp)) is dict:
        return "a JSON object of name -> {threshold, ...}"
    return describe(tp)
