"""Batch scoring: the library behind `sentinelle score`.

``score_file`` streams a CSV / TSV / JSON Lines / plain-text file (or stdin) in
chunks, scores them on every core (forked workers that share the loaded model),
and writes the input rows plus ``spam_score``, ``is_spam`` (at the model's stored
threshold) and ``model_version``. Memory stays bounded whatever the input size:
only a few chunks are ever in flight. Bad rows (undecodable bytes, no text) are
reported with their row and line numbers and either stop the run
(``on_error="fail"``) or are left out (``on_error="skip"``).

Run as ``sentinelle score`` (see ``serving.cli``).
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import logging
import multiprocessing as mp
import os
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from sentinelle import io
from sentinelle.errors import UserError
from sentinelle.serving.scorer import Scorer

log = logging.getLogger("sentinelle")

FORMATS = ("csv", "tsv", "jsonl", "txt")
Format = Literal["csv", "tsv", "jsonl", "txt"]
OnError = Literal["fail", "skip"]
OUTPUT_COLUMNS = ("spam_score", "is_spam", "model_version")
SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
}
DEFAULT_CHUNK_SIZE = 4096
MAX_BAD_ROWS_KEPT = 1000  # row numbers kept in the report; the count is always exact
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


@dataclass
class Report:
    """What a scoring run did."""

    rows_read: int = 0
    rows_scored: int = 0
    spam: int = 0
    bad_rows: int = 0
    bad: list[BadRow] = field(default_factory=list)  # the first MAX_BAD_ROWS_KEPT
    model_version: str = ""
    threshold: float = 0.0


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


class _Reader:
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


class _Writer:
    """Writes scored rows in one format to a binary stream."""

    def __init__(self, fh: IO[bytes], fmt: Format, header: list[str] | None, version: str) -> None:
        self.fmt, self.version = fmt, version
        self.text = _io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=False)
        self.header = header or ["text"]
        self.positions: list[int] = []
        if fmt in ("csv", "tsv"):
            self.csv = csv.writer(
                self.text, delimiter="," if fmt == "csv" else "\t", lineterminator="\n"
            )
            # A re-scored file keeps one set of output columns: overwrite them in place.
            out_header = list(self.header)
            for column in OUTPUT_COLUMNS:
                if column not in out_header:
                    out_header.append(column)
            self.positions = [out_header.index(c) for c in OUTPUT_COLUMNS]
            self.width = len(out_header)
            self.csv.writerow(out_header)

    def write(self, chunk: Chunk, scores: np.ndarray, threshold: float) -> None:
        if self.fmt in ("csv", "tsv"):
            i_score, i_spam, i_version = self.positions
            out = []
            for fields, s in zip(chunk.rows, scores.tolist(), strict=True):
                row = list(fields) + [""] * (self.width - len(fields))
                row[i_score], row[i_spam], row[i_version] = (
                    f"{s:.6f}",
                    "true" if s >= threshold else "false",
                    self.version,
                )
                out.append(row)
            self.csv.writerows(out)
        else:
            lines = []
            for record, s in zip(chunk.rows, scores.tolist(), strict=True):
                obj = (
                    dict(record)
                    if isinstance(record, dict)
                    else dict(zip(self.header, record, strict=True))
                )
                obj.update(
                    spam_score=round(s, 6), is_spam=s >= threshold, model_version=self.version
                )
                lines.append(json.dumps(obj, ensure_ascii=False))
            lines.append("")
            self.text.write("\n".join(lines))

    def close(self) -> None:
        self.text.flush()
        self.text.detach()


# ---------------------------------------------------------------------- parallelism

_worker_scorer: Scorer | None = None  # in a worker: the parent's scorer, inherited by fork


def _init_worker(scorer: Scorer) -> None:
    global _worker_scorer
    _worker_scorer = scorer
    # One BLAS thread per worker process: the processes are the parallelism.
    threadpool_limits(1)


def _score_in_worker(texts: list[str]) -> np.ndarray:
    assert _worker_scorer is not None
    return _worker_scorer.scores(texts)


def _scored(
    scorer: Scorer, chunks: Iterator[Chunk], workers: int
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Score chunks in order, on ``workers`` forked processes, with few chunks in flight."""
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        for chunk in chunks:
            yield chunk, scorer.scores(chunk.texts)
        return
    pending: deque[tuple[Chunk, Any]] = deque()
    # Forked, the workers inherit the scorer (initargs are not pickled): the model loads once.
    with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(scorer,)) as pool:
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(_score_in_worker, (chunk.texts,))))
            if len(pending) >= 2 * workers:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


# --------------------------------------------------------------------------- driver


@contextlib.contextmanager
def _open_input(path: str | Path) -> Iterator[IO[bytes]]:
    if str(path) == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UserError(f"{path}: cannot read input: {exc.strerror}") from None
    with fh:
        yield fh


@contextlib.contextmanager
def _open_output(path: str | Path | None) -> Iterator[IO[bytes]]:
    """Stdout as is, or a file written atomically (complete, or not at all)."""
    if path is None or str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with io.atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        yield fh


def _progress(fh: IO[bytes], enabled: bool | None) -> Any:
    size = None
    with contextlib.suppress(OSError, ValueError):
        size = os.fstat(fh.fileno()).st_size or None
    if enabled is None:
        enabled = sys.stderr.isatty()
    # A file: progress in bytes read, with a percentage; a pipe: messages scored.
    unit = "B" if size else "msg"
    return tqdm(
        total=size, unit=unit, unit_scale=True, desc="scoring", disable=not enabled, leave=False
    )


def score_file(
    source: str | Path,
    dest: str | Path | None = None,
    *,
    scorer: Scorer,
    fmt: str | None = None,
    output_format: str | None = None,
    text_column: str = "text",
    encoding: str = "utf-8",
    on_error: OnError = "fail",
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | None = None,
) -> Report:
    """Score every row of ``source`` (a path, or ``"-"`` for stdin) into ``dest`` (None: stdout).

    The input format comes from ``fmt`` or the suffix (stdin: plain text); the
    output format from ``output_format``, the ``dest`` suffix, or the input format
    (plain text in gives JSON Lines out). ``progress=None`` shows a bar only when
    stderr is a terminal. Returns a ``Report``; raises ``UserError`` on the first
    bad row when ``on_error="fail"`` (a file ``dest`` is then left untouched).
    """
    if on_error not in ("fail", "skip"):
        raise UserError(f"on_error={on_error!r} is not allowed; use 'fail' or 'skip'")
    in_fmt = detect_format(source, fmt, default="txt")
    out_fmt = detect_format(dest, output_format, default="jsonl" if in_fmt == "txt" else in_fmt)
    if out_fmt == "txt":
        raise UserError("plain text cannot hold the scores; write csv, tsv or jsonl")
    if in_fmt == "jsonl" and out_fmt != "jsonl":
        raise UserError(
            "JSON Lines input (one object per line, any keys) can only be written as jsonl"
        )
    if not workers:  # one per core this process may use
        workers = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    report = Report(model_version=scorer.version, threshold=scorer.threshold)
    name = "<stdin>" if str(source) == "-" else str(source)

    with _open_input(source) as raw, _open_output(dest) as out, _progress(raw, progress) as bar:
        reader = _Reader(raw, in_fmt, text_column, encoding, name)
        seekable = raw.seekable()
        rows = reader.rows()

        def chunks() -> Iterator[Chunk]:
            chunk = Chunk()
            for row, line, record, text, problem in rows:
                report.rows_read += 1
                if problem is not None:
                    bad = BadRow(row, line, problem)
                    if on_error == "fail":
                        raise UserError(
                            f"{name}: {bad.describe()}; use --on-error skip to leave such rows out"
                        )
                    report.bad_rows += 1
                    if len(report.bad) < MAX_BAD_ROWS_KEPT:
                        report.bad.append(bad)
                    continue
                chunk.rows.append(record)
                chunk.texts.append(text)  # type: ignore[arg-type]
                if len(chunk.texts) >= chunk_size:
                    yield chunk
                    chunk = Chunk()
            if chunk.texts:
                yield chunk

        batches = chunks()
        first = next(batches, None)  # reads the header (csv/tsv) before the writer needs it
        writer = _Writer(out, out_fmt, reader.header, scorer.version)
        position = 0
        all_chunks = iter(()) if first is None else _chain(first, batches)
        for chunk, scores in _scored(scorer, all_chunks, workers):
            writer.write(chunk, scores, scorer.threshold)
            report.rows_scored += len(chunk.texts)
            report.spam += int((scores >= scorer.threshold).sum())
            if not seekable:
                bar.update(len(chunk.texts))
                continue
            with contextlib.suppress(OSError, ValueError):
                now = raw.tell()
                bar.update(now - position)
                position = now
        writer.close()

    for bad in report.bad[:20]:
        log.warning("skipped %s: %s", name, bad.describe())
    if report.bad_rows > 20:
        log.warning(
            "skipped %d more bad rows (Report.bad lists the first %d)",
            report.bad_rows - 20,
            MAX_BAD_ROWS_KEPT,
        )
    return report


def _chain(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield from rest
