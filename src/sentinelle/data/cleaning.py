"""Cleaning labelled messages: the validation policies (``ingest.on_*``) and deduplication."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sentinelle.data.tables import Records, label_key
from sentinelle.errors import UserError
from sentinelle.params import IngestParams

# Problems a row can have, checked in this order; each has an ``ingest.on_*`` policy.
PROBLEMS = {
    "unknown_label": "on_unknown_label",
    "empty_text": "on_empty_text",
    "nul_bytes": "on_nul",
    "too_long": "on_too_long",
}


@dataclass(frozen=True)
class Cleaned:
    frame: pd.DataFrame  # columns: text, label (spam | ham)
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
            firsts.setdefault(repr(label_key(value)), []).append(row)
        shown = "; ".join(f"{v} ({_rows(unit, r)})" for v, r in list(firsts.items())[:5])
        more = f" and {len(firsts) - 5} more" if len(firsts) > 5 else ""
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


def clean(records: Records, where: str, p: IngestParams) -> Cleaned:
    """Map labels, apply the per-problem policies, resolve conflicts, drop exact duplicates.

    A problem whose policy is ``fail`` raises a one-line ``UserError`` naming the
    first rows; with ``drop`` the rows are dropped and counted.
    """
    if not records.rows:
        found = (
            f" (columns found: {', '.join(map(repr, records.columns))})" if records.columns else ""
        )
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
    keep_label: list[str] = []
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
            keep_label.append(label)
            keep_row.append(row)
            continue
        found[reason][0].append(row)
        found[reason][1].append(bad)
    for reason, policy in PROBLEMS.items():
        rows, values = found[reason]
        if rows and getattr(p, policy) == "fail":
            raise _problem_error(reason, where, records.unit, rows, values, p)
    dropped = {reason: len(rows) for reason, (rows, _) in found.items()}

    # Conflicts: the same text with both labels.
    labels_of: dict[str, dict[str, int]] = {}
    for text, label in zip(keep_text, keep_label, strict=True):
        counts = labels_of.setdefault(text, {})
        counts[label] = counts.get(label, 0) + 1
    conflicts = {t: c for t, c in labels_of.items() if len(c) > 1}
    if conflicts and p.on_conflict == "fail":
        text = next(iter(conflicts))
        at = [
            (r, lab) for r, t, lab in zip(keep_row, keep_text, keep_label, strict=True) if t == text
        ]
        shown = ", ".join(f"{r} ({lab})" for r, lab in at[:4])
        raise UserError(
            f"{where}: {records.unit} {at[0][0]}: {len(conflicts)} text(s) carry both labels, "
            f"e.g. {text[:50]!r} at {records.unit}s {shown}; "
            "set ingest.on_conflict: drop or majority"
        )
    winner: dict[str, str | None] = {}
    for text, counts in conflicts.items():
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        tie = ranked[0][1] == ranked[1][1]
        winner[text] = None if p.on_conflict == "drop" or tie else ranked[0][0]
    seen: set[str] = set()
    out_text: list[str] = []
    out_label: list[str] = []
    conflicting = duplicates = 0
    for text, label in zip(keep_text, keep_label, strict=True):
        if text in winner and winner[text] != label:
            conflicting += 1
        elif text in seen:
            duplicates += 1
        else:
            seen.add(text)
            out_text.append(text)
            out_label.append(label)
    dropped["conflicting"] = conflicting
    dropped["exact_duplicate"] = duplicates
    return Cleaned(
        frame=pd.DataFrame({"text": out_text, "label": out_label}),
        dropped=dropped,
        exact_duplicates=duplicates,
        conflicting_texts=len(conflicts),
        conflicting=conflicting,
    )
