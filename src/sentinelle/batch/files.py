"""Batch scoring: the library behind `sentinelle score`.

``score_file`` streams a CSV / TSV / JSON Lines / plain-text file (or stdin) in
chunks, scores them in this process, and writes the input rows plus ``spam_score``,
``is_spam`` (at the model's stored threshold) and ``model_version`` (with ``explain=K``: and
an ``explanation``, see ``serving.rows``). Memory stays bounded whatever the input size:
one chunk is in memory at a time. Bad rows (undecodable bytes, no text) are
reported with their row and line numbers and either stop the run
(``on_error="fail"``) or are left out (``on_error="skip"``). Partitioned data scores in
parallel on Dask (``batch.partitions``).

Run as ``sentinelle score`` (see ``sentinelle.cli``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from sentinelle import io
from sentinelle.errors import UserError
from sentinelle.modeling.explanations import MAX_EXPLAIN
from sentinelle.serving.rows import BadRow, Chunk, OnError, Reader, Writer, detect_format
from sentinelle.serving.scorer import Scorer

log = logging.getLogger("sentinelle")


DEFAULT_CHUNK_SIZE = 4096
MAX_BAD_ROWS_KEPT = 1000  # row numbers kept in the report; the count is always exact


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
    operating_point: str = "default"


Scored = tuple[np.ndarray, list[dict[str, Any]] | None]


def _scored(
    scorer: Scorer, chunks: Iterator[Chunk], explain: int | None = None
) -> Iterator[tuple[Chunk, Scored]]:
    """Each chunk with its scores (and explanations with ``explain``), in order."""
    for chunk in chunks:
        if explain is None:
            yield chunk, (scorer.scores(chunk.texts), None)
        else:
            yield chunk, scorer.explain(chunk.texts, explain)


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
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | None = None,
    operating_point: str | None = None,
    explain: int | None = None,
) -> Report:
    """Score every row of ``source`` (a path, or ``"-"`` for stdin) into ``dest`` (None: stdout).

    The input format comes from ``fmt`` or the suffix (stdin: plain text); the
    output format from ``output_format``, the ``dest`` suffix, or the input format
    (plain text in gives JSON Lines out). ``progress=None`` shows a bar only when
    stderr is a terminal. ``is_spam`` is decided at the named ``operating_point`` (``None``:
    the model's own threshold). ``explain=K`` adds each row's K top words each way
    (``Scorer.explain``). Returns a ``Report``; raises ``UserError`` on the first
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
    if explain is not None:
        if not 1 <= explain <= MAX_EXPLAIN:
            raise UserError(f"--explain {explain} is out of range; use 1 to {MAX_EXPLAIN}")
        scorer.explainer  # noqa: B018  built (or refused) before the output is opened
    point, threshold = scorer.operating_point(operating_point)
    report = Report(model_version=scorer.version, threshold=threshold, operating_point=point)
    name = "<stdin>" if str(source) == "-" else str(source)

    with _open_input(source) as raw, _open_output(dest) as out, _progress(raw, progress) as bar:
        reader = Reader(raw, in_fmt, text_column, encoding, name)
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
        writer = Writer(out, out_fmt, reader.header, scorer.version, explain is not None)
        position = 0
        all_chunks = iter(()) if first is None else _chain(first, batches)
        for chunk, (scores, explanations) in _scored(scorer, all_chunks, explain):
            writer.write(chunk, scores, threshold, explanations)
            report.rows_scored += len(chunk.texts)
            report.spam += int((scores >= threshold).sum())
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
