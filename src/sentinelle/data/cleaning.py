"""Cleaning labelled messages: the validation policies (``ingest.on_*``) and deduplication."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from sentinelle.data.tables import Records, clip, clip_all, label_key
from sentinelle.errors import UserError
from sentinelle.params import IngestParams

SHOWN_LABEL = 30  # characters of each unknown label an error quotes (three at most)
# Problems a row can have, checked in this order; each has an ``ingest.on_*`` policy.
PROBLEMS = {
    "unknown_label": "on_unknown_label",
    "empty_text": "on_empty_text",
    "nul_bytes": "on_nul",
    "too_long": "on_too_long",
}


@dataclass(frozen=True)
class Cleaned:
    frame: pd.DataFrame | None  # columns: text, label (spam | ham); None once split
    dropped: dict[str, int]  # rows dropped per reason (PROBLEMS, conflicting, exact_duplicate)
    exact_duplicates: int  # rows dropped because text and label repeat an earlier row
    conflicting_texts: int  # distinct texts that carry both labels
    conflicting: int  # rows dropped because of those conflicts


def _rows(unit: str, rows: list[int], limit: int = 3) -> str:
    shown = ", ".join(map(str, rows[:limit])) + (", ..." if len(rows) > limit else "")
    return f"{unit}{'s' if len(rows) > 1 else ''} {shown}"


def _problem_error(
    reason: str, where: str, unit: str, rows: list[int], values: list[object], p: IngestParams
) -> UserError:
    head = f"{where}: {unit} {rows[0]}: "
    if reason == "unknown_label":
        firsts: dict[str, list[int]] = {}
        for row, value in zip(rows, values, strict=True):
            firsts.setdefault(label_key(value), []).append(row)
        shown = "; ".join(
            f"{clip(v, SHOWN_LABEL)} ({_rows(unit, r)})" for v, r in list(firsts.items())[:3]
        )
        more = f" and {len(firsts) - 3} more" if len(firsts) > 3 else ""
        return UserError(
            f"{head}{len(rows)} row(s) with a label that maps to neither class, "
            f"{len(firsts)} distinct: {shown}{more}; accepted (case-insensitive): "
            f"ingest.spam_labels {[label_key(v) for v in p.spam_labels]}, "
            f"ingest.ham_labels {[label_key(v) for v in p.ham_labels]}; "
            "or set ingest.on_unknown_label: drop"
        )
    what = {
        "empty_text": "empty or whitespace-only text(s)",
        "nul_bytes": "text(s) holding a NUL byte",
        "too_long": f"text(s) longer than ingest.max_chars = {p.max_chars} characters "
        f"(longest {max(len(str(v)) for v in values)})",
    }[reason]
    return UserError(
        f"{head}{len(rows)} {what} ({_rows(unit, rows)}); "
        f"set ingest.{PROBLEMS[reason]}: drop to skip such rows"
    )


LABELS = np.array(["ham", "spam"], dtype=object)  # a label column of two shared strings


@dataclass(frozen=True)
class Valid:
    """The rows that pass the per-row policies, and how many were dropped per problem: the
    texts as one Arrow array (a message's bytes and an offset, not a Python object each),
    and 9 bytes a row besides."""

    texts: pa.Array  # large_string
    digests: np.ndarray  # (n, 2) uint64: a 128-bit BLAKE2b digest of each text, its identity
    spam: np.ndarray  # bool: the row's label is spam (else ham)
    rows: np.ndarray  # int64: where each row starts in its file (line or row number)
    dropped: dict[str, int]
    files: list[str] | None = None  # a partitioned source's file names, and ...
    file_of: np.ndarray | None = None  # ... the index in ``files`` of each row's file

    def row_name(self, i: int) -> str:
        """Row ``i`` as messages name it: its line or row number, ``file:line`` in partitions."""
        if self.files is None or self.file_of is None:
            return str(self.rows[i])
        return f"{self.files[self.file_of[i]]}:{self.rows[i]}"


def clean(records: Records, where: str, p: IngestParams) -> Cleaned:
    """Map labels, apply the per-problem policies, resolve conflicts, drop exact duplicates.

    A problem whose policy is ``fail`` raises a one-line ``UserError`` naming the
    first rows; with ``drop`` the rows are dropped and counted.
    """
    return deduplicate(validate(records, where, p), where, records.unit, p)


def validate(records: Records, where: str, p: IngestParams) -> Valid:
    """Map labels and apply the per-problem policies (``ingest.on_*``) to every row."""
    if not records.rows:
        found = f" (columns found: {clip_all(records.columns)})" if records.columns else ""
        raise UserError(f"{where}: no messages found{found}")
    spam = {label_key(v) for v in p.spam_labels}
    ham = {label_key(v) for v in p.ham_labels}
    if both := sorted(spam & ham):
        raise UserError(
            f"params: {both[0]!r} is in both ingest.spam_labels and ingest.ham_labels; "
            "a label value must mean one class"
        )
    found: dict[str, tuple[list[int], list[object]]] = {r: ([], []) for r in PROBLEMS}
    keep_text: list[str] = []
    keep_spam: list[bool] = []
    keep_row: list[int] = []
    for row, value, text in zip(records.rows, records.labels, records.texts, strict=True):
        key = label_key(value)
        label = "spam" if key in spam else "ham" if key in ham else None
        if label is None:
            reason, bad = "unknown_label", value
        elif not text.strip():
            reason, bad = "empty_text", text
        elif "\x00" in text:
            reason, bad = "nul_bytes", text
        elif len(text) > p.max_chars:
            reason, bad = "too_long", text
        else:
            keep_text.append(text)
            keep_spam.append(label == "spam")
            keep_row.append(row)
            continue
        found[reason][0].append(row)
        found[reason][1].append(bad)
    for reason, policy in PROBLEMS.items():
        rows, values = found[reason]
        if rows and getattr(p, policy) == "fail":
            raise _problem_error(reason, where, records.unit, rows, values, p)
    dropped = {reason: len(rows) for reason, (rows, _) in found.items()}
    return Valid(
        pa.array(keep_text, type=pa.large_string()),
        text_digests(keep_text),
        np.array(keep_spam, dtype=bool),
        np.array(keep_row, dtype=np.int64),
        dropped,
    )


def text_digests(texts: list[str]) -> np.ndarray:
    """The 16-byte BLAKE2b digest of each text, as an ``(n, 2)`` uint64 array."""
    blob = b"".join(
        hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts
    )
    return np.frombuffer(blob, dtype=np.uint64).reshape(-1, 2)


def first_appearance_codes(keys: np.ndarray) -> np.ndarray:
    """Each row of ``keys`` (an ``(n, 2)`` uint64 array) numbered 0, 1, ... in order of first
    appearance, equal rows alike: ``pd.factorize`` of the pairs, on integer arrays."""
    high, _ = pd.factorize(keys[:, 0])
    low, low_uniques = pd.factorize(keys[:, 1])
    codes, _ = pd.factorize(high.astype(np.int64) * len(low_uniques) + low)
    return codes


def deduplicate(valid: Valid, where: str, unit: str, p: IngestParams) -> Cleaned:
    """Resolve texts labelled both ways (``ingest.on_conflict``), then keep the first of each
    text: rows in their order. Works on integer codes of the texts (``pd.factorize``, codes in
    order of first appearance), not a dict per text, so 10M messages fit in memory."""
    texts, is_spam = valid.texts, valid.spam
    # The same text, the same digest: codes in order of first appearance, as pd.factorize of
    # the texts gives them (two texts share a digest with a chance of about 1e-25 at 10M).
    codes = first_appearance_codes(valid.digests)
    n_rows = np.bincount(codes)
    n_spam = np.bincount(codes, weights=is_spam, minlength=len(n_rows)).astype(np.int64)
    n_ham = n_rows - n_spam
    conflicted = (n_spam > 0) & (n_ham > 0)
    if conflicted.any() and p.on_conflict == "fail":
        first = int(np.flatnonzero(conflicted)[0])  # the first such text, as codes are ordered
        rows = np.flatnonzero(codes == first)
        shown = ", ".join(f"{valid.row_name(i)} ({LABELS[int(is_spam[i])]})" for i in rows[:4])
        raise UserError(
            f"{where}: {unit} {valid.row_name(rows[0])}: {int(conflicted.sum())} text(s) carry "
            f"both labels, e.g. {texts[int(rows[0])].as_py()[:50]!r} at {unit}s {shown}; "
            "set ingest.on_conflict: drop or majority"
        )
    # A conflicted text keeps the rows of its winning label: none for drop or a tie.
    if p.on_conflict == "majority":
        winner = np.where(n_spam > n_ham, 1, np.where(n_ham > n_spam, 0, -1))
    else:
        winner = np.full(len(n_rows), -1)
    losing = conflicted[codes] & (winner[codes] != is_spam)
    repeated = pd.Series(codes).where(~losing).duplicated().to_numpy() & ~losing
    keep = ~losing & ~repeated
    dropped = dict(valid.dropped)
    dropped["conflicting"] = conflicting = int(losing.sum())
    dropped["exact_duplicate"] = duplicates = int(repeated.sum())
    kept = np.flatnonzero(keep)
    return Cleaned(
        frame=pd.DataFrame(
            {
                "text": pd.Series(
                    texts if len(kept) == len(texts) else texts.take(kept),
                    dtype=pd.StringDtype("pyarrow", np.nan),
                ),
                "label": LABELS[is_spam[kept].astype(np.intp)],
            }
        ),
        dropped=dropped,
        exact_duplicates=duplicates,
        conflicting_texts=int(conflicted.sum()),
        conflicting=conflicting,
    )
