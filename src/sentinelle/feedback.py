"""The feedback store: verdicts users report, kept durably in a JSON Lines file.

One record a line, ``{"id": ..., "label": "spam"|"ham", "model_version": ..., "reporter": ...,
"score": ..., "source": ..., "text": ...}``: ``reporter`` is who may be held to it (the API
token's name, or ``--reporter`` on the command line); ``score`` and ``model_version`` are the
verdict the serving model gave the text when it was reported (null when none was at hand).
Every field but ``text`` and ``label`` may be null or absent. Appended with one
``os.write`` of the whole line to a file opened with ``O_APPEND`` and then ``fsync``-ed,
under an exclusive ``flock`` (several servers and ``sentinelle feedback`` may append at
once). A record is acknowledged only once it is on disk; a record whose ``id`` is already stored is
not stored twice. A crash can at worst leave the last line incomplete (no newline):
readers ignore it with a warning, and the next append cuts it off before writing.

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
    """A validated record; a bad field is a one-line ``UserError`` naming it."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{where}: text {text!r} is invalid: must be a non-empty string")
    if "\0" in text or len(text) > MAX_CHARS:
        raise UserError(
            f"{where}: text is invalid: must hold no NUL byte and at most {MAX_CHARS} characters"
        )
    if label not in LABELS:
        raise UserError(f"{where}: label {label!r} is invalid: must be one of spam, ham")
    for name, value in (
        ("id", id),
        ("source", source),
        ("reporter", reporter),
        ("model_version", model_version),
    ):
        if value is not None and (
            not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD
        ):
            raise UserError(
                f"{where}: {name} {value!r} is invalid: must be null or a non-empty string "
                f"of at most {MAX_FIELD} characters"
            )
    if score is not None and (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not 0.0 <= float(score) <= 1.0
    ):
        raise UserError(f"{where}: score {score!r} is invalid: must be null or a number in [0, 1]")
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


def parse(data: bytes, where: str) -> list[Record]:
    """The records of a feedback file's bytes; an incomplete last line is ignored with a
    warning, any other bad line is a ``UserError`` naming it."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        log.warning("%s: line %d is incomplete (a write cut short); ignored", where, len(lines) + 1)
    out = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise UserError(f"{where}: line {number}: not valid JSON: {exc}") from None
        if not isinstance(obj, dict) or set(obj) - FIELDS:
            raise UserError(
                f"{where}: line {number}: a record is an object with the keys "
                f"{', '.join(sorted(FIELDS))}"
            )
        out.append(
            record(
                obj.get("text"),
                obj.get("label"),
                obj.get("id"),
                obj.get("source"),
                reporter=obj.get("reporter"),
                score=obj.get("score"),
                model_version=obj.get("model_version"),
                where=f"{where}: line {number}",
            )
        )
    return out


def read(path: Path) -> list[Record]:
    """Every complete record of a feedback file."""
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
        self._offset = 0
        self._ids: dict[str, Record] = {}
        self._counts: Counter[str] = Counter()

    def _catch_up(self, fd: int) -> None:
        """Read the complete lines appended since the last call; cut off an incomplete tail."""
        size = os.fstat(fd).st_size
        if size < self._offset:  # the file was replaced: start again
            self._offset, self._ids, self._counts = 0, {}, Counter()
        data = os.pread(fd, size - self._offset, self._offset)
        complete = data[: data.rfind(b"\n") + 1]
        for rec in parse(complete, str(self.path)):
            if rec.id is not None:
                self._ids.setdefault(rec.id, rec)
            self._counts[rec.label] += 1
        self._offset += len(complete)

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot open the feedback file: {exc.strerror}") from None

    def add_many(self, records: list[Record]) -> list[tuple[Record, bool]]:
        """Append each record not already stored by id; ``(record, stored)`` for each (a
        duplicate gives the stored one and False). Returns once they are on disk."""
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
                    if rec.id is not None and rec.id in self._ids:
                        out.append((self._ids[rec.id], False))
                        continue
                    line = rec.line()
                    if os.write(fd, line) != len(line):  # a short write: disk full
                        os.ftruncate(fd, self._offset)
                        raise OSError(f"{self.path}: short write (disk full?)")
                    self._offset += len(line)
                    if rec.id is not None:
                        self._ids[rec.id] = rec
                    self._counts[rec.label] += 1
                    out.append((rec, True))
                os.fsync(fd)
            finally:
                os.close(fd)  # also releases the flock
        return out

    def add(self, rec: Record) -> tuple[Record, bool]:
        return self.add_many([rec])[0]

    def stats(self) -> dict[str, Any]:
        """``{"total": n, "by_label": {"ham": h, "spam": s}}`` of the complete records."""
        with self._lock:
            if self.path.exists():
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                    self._catch_up(fd)
                finally:
                    os.close(fd)
            by_label = {label: self._counts[label] for label in sorted(LABELS)}
        return {"total": sum(by_label.values()), "by_label": by_label}
