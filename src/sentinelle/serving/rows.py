"""The rows `sentinelle score` reads and writes: CSV, TSV, JSON Lines or plain text, in chunks.

``Reader`` yields chunks of good rows and reports bad ones (undecodable bytes, no
text) with their row and line numbers; ``Writer`` writes the input rows back with the
score columns added (and, when explaining, an ``explanation``: a JSON object in JSON
Lines, the same object as compact JSON text in a CSV/TSV column).
"""

from __future__ import annotations

import csv
import io as _io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from sentinelle.errors import UserError

log = logging.getLogger("sentinelle")


FORMATS = ("csv", "tsv", "jsonl", "txt")
Format = Literal["csv", "tsv", "jsonl", "txt"]
OnError = Literal["fail", "skip"]
OUTPUT_COLUMNS = ("spam_score", "is_spam", "model_version")
EXPLANATION_COLUMN = "explanation"
SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
}
# Label values `monitor`, `compare` and `feedback import` read (case-insensitive).
SPAM_LABELS = frozenset({"spam", "1", "true"})
HAM_LABELS = frozenset({"ham", "0", "false"})


def is_spam_label(value: object) -> bool | None:
    """True for a spam label, False for a ham one, None for anything else."""
    key = str(value).strip().lower() if value is not None else None
    return True if key in SPAM_LABELS else False if key in HAM_LABELS else None


def spam_label(value: object, label_column: str, where: str) -> bool:
    """``is_spam_label`` of a row's label, or a one-line error naming the row and the value."""
    spam = is_spam_label(value)
    if spam is None:
        raise UserError(
            f"{where}: {label_column} {value!r} is not a label; "
            "allowed: spam, ham (or 1/0, true/false)"
        )
    return spam


def labelled_rows(
    path: Path, fmt: str | None, text_column: str, encoding: str
) -> Iterator[tuple[str, Any, list[str] | None, str]]:
    """``(where, record, header, text)`` of each row of a CSV / TSV / JSON Lines file that
    holds labels (``monitor``, ``compare``, ``feedback import``); a bad row is a one-line
    error."""
    in_fmt = detect_format(path, fmt, default="txt")
    if in_fmt == "txt":
        raise UserError(f"{path}: plain text has no label column; use csv, tsv or jsonl")
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UserError(f"{path}: cannot read input: {exc.strerror}") from None
    with fh:
        reader = Reader(fh, in_fmt, text_column, encoding, str(path))
        for row, line, record, text, problem in reader.rows():
            where = f"{path}: row {row} (line {line})"
            if problem is not None:
                raise UserError(f"{where}: {problem}")
            yield where, record, reader.header, text  # type: ignore[misc]


def column_value(record: Any, header: list[str] | None, column: str) -> Any:
    """The value of ``column`` in a row read by ``Reader`` (None if it has no such column)."""
    if isinstance(record, dict):
        return record.get(column)
    if header and column in header and header.index(column) < len(record):
        return record[header.index(column)]
    return None


# csv's default field limit (128 KiB) would stop a whole run on one long field;
# the scoring itself has no length limit.
csv.field_size_limit(1 << 30)


# --------------------------------------------------------------------------- input


@dataclass
class Chunk:
    """Consecutive good rows of the input, ready to score and write back."""

    rows: list[Any] = field(default_factory=list)  # list of fields (csv/tsv/txt) or dict (jsonl)
    texts: list[str] = field(default_factory=list)


@dataclass
class BadRow:
    row: int  # 1-based data row (a CSV/TSV header is not a row)
    line: int  # 1-based line of the file where the row starts
    reason: str

    def describe(self) -> str:
        return f"row {self.row} (line {self.line}): {self.reason}"


def detect_format(path: str | Path | None, explicit: str | None, default: Format) -> Format:
    """``explicit`` if given, else from the file suffix, else ``default``."""
    if explicit:
        if explicit not in FORMATS:
            raise UserError(f"format {explicit!r} is not supported; allowed: {', '.join(FORMATS)}")
        return explicit  # type: ignore[return-value]
    if path is None or str(path) == "-":
        return default
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(
            f"{path}: cannot tell the format from the suffix {suffix!r}; "
            f"use --format with one of {', '.join(FORMATS)} (or name it .csv, .tsv, .jsonl, .txt)"
        )
    return SUFFIXES[suffix]


def _undecodable(value: str) -> bool:
    """True if a string decoded with surrogateescape held bytes the encoding could not decode."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class Reader:
    """Reads rows of one format from a binary stream; yields good rows and records bad ones."""

    def __init__(
        self, fh: IO[bytes], fmt: Format, text_column: str, encoding: str, source: str
    ) -> None:
        self.fmt, self.text_column, self.source = fmt, text_column, source
        if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
            encoding = "utf-8-sig"  # also reads files that start with a byte-order mark (Excel)
        try:
            self.text = _io.TextIOWrapper(
                fh, encoding=encoding, errors="surrogateescape", newline=""
            )
        except LookupError:
            raise UserError(f"unknown encoding {encoding!r}; e.g. utf-8, latin-1, cp1252") from None
        self.header: list[str] | None = None
        self.text_index = 0

    def rows(self) -> Iterator[tuple[int, int, Any, str | None, str | None]]:
        """Yield ``(row, line, record, text, problem)``; ``problem`` is None for a good row."""
        if self.fmt in ("csv", "tsv"):
            yield from self._delimited()
        elif self.fmt == "jsonl":
            yield from self._jsonl()
        else:
            yield from self._plain()

    def _delimited(self) -> Iterator[tuple[int, int, Any, str | None, str | None]]:
        reader = csv.reader(self.text, delimiter="," if self.fmt == "csv" else "\t")
        header = next(reader, None)
        if header is None:
            raise UserError(
                f"{self.source}: empty input, "
                f"expected a header row with a {self.text_column!r} column"
            )
        if any(_undecodable(h) for h in header):
            raise UserError(f"{self.source}: line 1: the header row holds undecodable bytes")
        if self.text_column not in header:
            raise UserError(
                f"{self.source}: no column {self.text_column!r} in the header "
                f"({', '.join(map(repr, header[:10]))}); choose one with --text-column"
            )
        self.header, self.text_index = header, header.index(self.text_column)
        width, start = len(header), reader.line_num + 1
        for row, fields in enumerate(reader, start=1):
            line, start = start, reader.line_num + 1
            if not fields:  # a blank line
                yield row, line, fields, None, "empty line"
            elif any(_undecodable(f) for f in fields):
                yield (
                    row,
                    line,
                    fields,
                    None,
                    "undecodable bytes (not valid text in the input encoding)",
                )
            elif len(fields) != width:
                what = (
                    "missing text column"
                    if len(fields) <= self.text_index
                    else "wrong number of fields"
                )
                yield (
                    row,
                    line,
                    fields,
                    None,
                    f"{what}: {len(fields)} fields, the header has {width}",
                )
            elif not fields[self.text_index].strip():
                yield row, line, fields, None, f"empty text in column {self.text_column!r}"
            else:
                yield row, line, fields, fields[self.text_index], None

    def _lines(self) -> Iterator[tuple[int, str]]:
        for number, line in enumerate(self.text, 1):
            yield number, line.rstrip("\r\n")

    def _jsonl(self) -> Iterator[tuple[int, int, Any, str | None, str | None]]:
        for number, line in self._lines():
            if not line.strip():
                yield number, number, None, None, "empty line"
                continue
            if _undecodable(line):
                yield (
                    number,
                    number,
                    None,
                    None,
                    "undecodable bytes (not valid text in the input encoding)",
                )
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                yield number, number, None, None, f"not valid JSON: {exc}"
                continue
            if not isinstance(obj, dict):
                yield number, number, None, None, f"not a JSON object but {type(obj).__name__}"
            elif self.text_column not in obj:
                yield number, number, None, None, f"missing text field {self.text_column!r}"
            elif not isinstance(obj[self.text_column], str):
                got = type(obj[self.text_column]).__name__
                yield (
                    number,
                    number,
                    None,
                    None,
                    f"field {self.text_column!r} is {got}, not a string",
                )
            elif not obj[self.text_column].strip():
                yield number, number, None, None, f"empty text in field {self.text_column!r}"
            else:
                yield number, number, obj, obj[self.text_column], None

    def _plain(self) -> Iterator[tuple[int, int, Any, str | None, str | None]]:
        self.header = ["text"]
        for number, line in self._lines():
            if _undecodable(line):
                yield (
                    number,
                    number,
                    None,
                    None,
                    "undecodable bytes (not valid text in the input encoding)",
                )
            elif not line.strip():
                yield number, number, None, None, "empty line"
            else:
                yield number, number, [line], line, None


# -------------------------------------------------------------------------- output


class Writer:
    """Writes scored rows in one format to a binary stream."""

    def __init__(
        self,
        fh: IO[bytes],
        fmt: Format,
        header: list[str] | None,
        version: str,
        explain: bool = False,
    ) -> None:
        self.fmt, self.version = fmt, version
        columns = (*OUTPUT_COLUMNS, EXPLANATION_COLUMN) if explain else OUTPUT_COLUMNS
        self.text = _io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=False)
        self.header = header or ["text"]
        self.positions: list[int] = []
        if fmt in ("csv", "tsv"):
            self.csv = csv.writer(
                self.text, delimiter="," if fmt == "csv" else "\t", lineterminator="\n"
            )
            # A re-scored file keeps one set of output columns: overwrite them in place.
            out_header = list(self.header)
            for column in columns:
                if column not in out_header:
                    out_header.append(column)
            self.positions = [out_header.index(c) for c in columns]
            self.width = len(out_header)
            self.csv.writerow(out_header)

    def write(
        self,
        chunk: Chunk,
        scores: np.ndarray,
        threshold: float,
        explanations: list[dict[str, Any]] | None = None,
    ) -> None:
        if self.fmt in ("csv", "tsv"):
            i_score, i_spam, i_version = self.positions[:3]
            out = []
            for n, (fields, s) in enumerate(zip(chunk.rows, scores.tolist(), strict=True)):
                row = list(fields) + [""] * (self.width - len(fields))
                row[i_score], row[i_spam], row[i_version] = (
                    f"{s:.6f}",
                    "true" if s >= threshold else "false",
                    self.version,
                )
                if explanations is not None:
                    row[self.positions[3]] = json.dumps(
                        explanations[n], ensure_ascii=False, separators=(",", ":")
                    )
                out.append(row)
            self.csv.writerows(out)
        else:
            lines = []
            for n, (record, s) in enumerate(zip(chunk.rows, scores.tolist(), strict=True)):
                obj = (
                    dict(record)
                    if isinstance(record, dict)
                    else dict(zip(self.header, record, strict=True))
                )
                obj.update(
                    spam_score=round(s, 6), is_spam=s >= threshold, model_version=self.version
                )
                if explanations is not None:
                    obj[EXPLANATION_COLUMN] = explanations[n]
                lines.append(json.dumps(obj, ensure_ascii=False))
            lines.append("")
            self.text.write("\n".join(lines))

    def close(self) -> None:
        self.text.flush()
        self.text.detach()
