"""The feedback store: verdicts users report, kept durably in a JSON Lines file.

One record a line, ``{"id": ..., "label": "spam"|"ham", "model_version": ..., "reporter": ...,
"score": ..., "source": ..., "text": ...}``: ``reporter`` is who may be held to it (the API
token's name, or ``--reporter`` on the command line); ``score`` and ``model_version`` are the
verdict the serving model gave the text when it was reported (null when none was at hand).
Every field but ``text`` and ``label`` may be null or absent. Appended with one
``os.write`` of the whole line to a file opened with ``O_APPEND`` and then ``fsync``-ed,
under an exclusive ``flock`` (several servers and ``sentinelle feedback`` may append at
once). A record is acknowledged only once it is on disk; a record whose ``id`` its reporter
already stored is not stored twice. Ids are each reporter's own: another reporter's id
neither blocks a report nor shows the stored one. A crash can at worst leave the last line
incomplete (no newline): the next append cuts it off before writing.

Every writer and reader applies one set of rules (``record``: no NUL byte, at most
``MAX_CHARS`` characters, a known label, short fields). Readers never stop at a bad or torn
line: ``scan`` skips it, counts it and describes it (line number and reason), and
``parse``, ``read`` and ``Store.stats`` say so.

Written by ``POST /feedback`` and ``sentinelle feedback add|import``; read by
``GET /feedback/stats``, ``sentinelle feedback stats`` and ingest (``ingest.feedback``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sentinelle.errors import UserError

__all__ = [
    "FIELDS",
    "LABELS",
    "MAX_CHARS",
    "MAX_FIELD",
    "Invalid",
    "Parsed",
    "Record",
    "Skipped",
    "Store",
    "parse",
    "read",
    "record",
    "scan",
]

log = logging.getLogger("sentinelle")

LABELS = ("spam", "ham")
MAX_CHARS = 5000  # longest text (the API's default limit)
MAX_FIELD = 200  # longest id or source


@dataclass(frozen=True)
class Record:
    text: str
    label: str
    id: str | None = None
    source: str | None = None
    reporter: str | None = None
    score: float | None = None  # the serving model's spam score when it was reported
    model_version: str | None = None  # the model that gave that score

    def line(self) -> bytes:
        return (json.dumps(asdict(self), ensure_ascii=False, sort_keys=True) + "\n").encode()


class Invalid(UserError):
    """A record field breaks the rules; ``field`` names it (the API's 422 ``loc``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _shown(value: Any) -> str:
    """A bad value as an error line quotes it: its repr, at most ~40 characters of it."""
    return repr(value[:40]) if isinstance(value, str) else repr(value)[:40]


def _valid_text(value: str) -> bool:
    """No NUL byte and no lone surrogate (a string JSON can hold that UTF-8 cannot)."""
    if "\0" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def record(
    text: Any,
    label: Any,
    id: Any = None,
    source: Any = None,
    *,
    reporter: Any = None,
    score: Any = None,
    model_version: Any = None,
    where: str = "feedback",
) -> Record:
    """A validated record: the one set of rules for the API, the CLI and every reader.
    A bad field is an ``Invalid`` (a one-line ``UserError``) naming it."""
    if not isinstance(text, str) or not text.strip():
        raise Invalid(
            f"{where}: text {_shown(text)} is invalid: must be a non-empty string", "text"
        )
    if len(text) > MAX_CHARS or not _valid_text(text):
        raise Invalid(
            f"{where}: text is invalid ({len(text)} characters): must hold no NUL byte, "
            f"only valid Unicode and at most {MAX_CHARS} characters",
            "text",
        )
    if label not in LABELS:
        raise Invalid(
            f"{where}: label {_shown(label)} is invalid: must be one of spam, ham", "label"
        )
    for name, value in (
        ("id", id),
        ("source", source),
        ("reporter", reporter),
        ("model_version", model_version),
    ):
        if value is not None and (
            not isinstance(value, str)
            or not value.strip()
            or len(value) > MAX_FIELD
            or not _valid_text(value)
        ):
            raise Invalid(
                f"{where}: {name} {_shown(value)} is invalid: must be null or a non-empty "
                f"string of at most {MAX_FIELD} characters, no NUL byte",
                name,
            )
    if score is not None and (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not 0.0 <= float(score) <= 1.0
    ):
        raise Invalid(
            f"{where}: score {_shown(score)} is invalid: must be null or a number in [0, 1]",
            "score",
        )
    return Record(
        text,
        label,
        id,
        source,
        reporter,
        None if score is None else float(score),
        model_version,
    )


FIELDS = frozenset(f.name for f in fields(Record))


MAX_PROBLEMS = 20  # skipped lines described (all are counted)
REASON_CHARS = 120


@dataclass(frozen=True)
class Skipped:
    """A line a reader left out: its number (1-based) and why (at most 120 characters)."""

    line: int
    reason: str


@dataclass(frozen=True)
class Parsed:
    """What a reader found: the good records, how many lines it skipped, the first
    ``MAX_PROBLEMS`` of those described."""

    records: list[Record]
    skipped: int = 0
    problems: tuple[Skipped, ...] = ()

    def warn(self, where: str) -> None:
        """Log one warning per described skipped line, and the count of the rest."""
        for p in self.problems:
            log.warning("%s: line %d skipped: %s", where, p.line, p.reason)
        if self.skipped > len(self.problems):
            log.warning("%s: %d more lines skipped", where, self.skipped - len(self.problems))


def _reason(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def scan(data: bytes, where: str, first_line: int = 1) -> Parsed:
    """The records of a feedback file's bytes, skipping (and counting) every line that is
    not a valid record: a torn last line (a write cut short), junk, a record ``record``
    refuses. ``first_line``: the number of the first line of ``data`` in its file."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records: list[Record] = []
    problems: list[Skipped] = []
    skipped = 0

    def skip(number: int, reason: str) -> None:
        nonlocal skipped
        skipped += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(Skipped(number, _reason(reason)))

    for number, raw in enumerate(lines, first_line):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            skip(number, f"not valid JSON: {exc}")
            continue
        if not isinstance(obj, dict) or set(obj) - FIELDS:
            skip(number, f"a record is an object with the keys {', '.join(sorted(FIELDS))}")
            continue
        prefix = f"{where}: line {number}"
        try:
            records.append(
                record(
                    obj.get("text"),
                    obj.get("label"),
                    obj.get("id"),
                    obj.get("source"),
                    reporter=obj.get("reporter"),
                    score=obj.get("score"),
                    model_version=obj.get("model_version"),
                    where=prefix,
                )
            )
        except Invalid as exc:
            skip(number, str(exc)[len(prefix) + 2 :])
    if tail:
        skip(first_line + len(lines), "incomplete (a write cut short): no newline at the end")
    return Parsed(records, skipped, tuple(problems))


def parse(data: bytes, where: str) -> list[Record]:
    """The records of a feedback file's bytes; every skipped line is logged (``scan``)."""
    parsed = scan(data, where)
    parsed.warn(where)
    return parsed.records


def read(path: Path) -> list[Record]:
    """Every valid record of a feedback file; every skipped line is logged (``scan``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the feedback file: {exc.strerror}") from None
    return parse(data, str(path))


class Store:
    """Appends to one feedback file; safe across threads (a lock) and processes (flock).

    It keeps the ids and label counts of what it has read, and reads only what other
    writers appended since.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._offset = 0
        self._lines = 0  # complete lines read
        self._ids: dict[tuple[str | None, str], Record] = {}  # (reporter, id) -> record
        self._counts: Counter[str] = Counter()
        self._skipped = 0
        self._problems: list[Skipped] = []

    def _catch_up(self, fd: int) -> None:
        """Read the complete lines appended since the last call; cut off an incomplete tail."""
        size = os.fstat(fd).st_size
        if size < self._offset:  # the file was replaced: start again
            self._reset()
        data = os.pread(fd, size - self._offset, self._offset)
        complete = data[: data.rfind(b"\n") + 1]
        parsed = scan(complete, str(self.path), self._lines + 1)
        if parsed.skipped:
            parsed.warn(str(self.path))
            self._skipped += parsed.skipped
            self._problems = [*self._problems, *parsed.problems][:MAX_PROBLEMS]
        for rec in parsed.records:
            if rec.id is not None:
                self._ids.setdefault((rec.reporter, rec.id), rec)
            self._counts[rec.label] += 1
        self._offset += len(complete)
        self._lines += complete.count(b"\n")

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot open the feedback file: {exc.strerror}") from None

    def add_many(self, records: list[Record]) -> list[tuple[Record, bool]]:
        """Append each record its reporter has not already stored by id; ``(record, stored)``
        for each (a duplicate gives the stored one and False). Returns once they are on disk."""
        out: list[tuple[Record, bool]] = []
        with self._lock:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._catch_up(fd)
                if os.fstat(fd).st_size > self._offset:  # an incomplete line: never acknowledged
                    log.warning("%s: cutting off an incomplete last line", self.path)
                    os.ftruncate(fd, self._offset)
                for rec in records:
                    key = (rec.reporter, rec.id)
                    if rec.id is not None and key in self._ids:
                        out.append((self._ids[key], False))
                        continue
                    line = rec.line()
                    if os.write(fd, line) != len(line):  # a short write: disk full
                        os.ftruncate(fd, self._offset)
                        raise OSError(f"{self.path}: short write (disk full?)")
                    self._offset += len(line)
                    self._lines += 1
                    if rec.id is not None:
                        self._ids[key] = rec
                    self._counts[rec.label] += 1
                    out.append((rec, True))
                os.fsync(fd)
            finally:
                os.close(fd)  # also releases the flock
        return out

    def add(self, rec: Record) -> tuple[Record, bool]:
        return self.add_many([rec])[0]

    def stats(self) -> dict[str, Any]:
        """``{"total": n, "by_label": {"ham": h, "spam": s}, "skipped": k, "problems":
        [{"line": i, "reason": ...}, ...]}``: the valid records, and the lines left out."""
        with self._lock:
            if self.path.exists():
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                    self._catch_up(fd)
                finally:
                    os.close(fd)
            by_label = {label: self._counts[label] for label in sorted(LABELS)}
            skipped, problems = self._skipped, [asdict(p) for p in self._problems]
        return {
            "total": sum(by_label.values()),
            "by_label": by_label,
            "skipped": skipped,
            "problems": problems,
        }
