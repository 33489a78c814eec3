"""``sentinelle feedback import``: reported verdicts from a file into the feedback store.

Reads any file ``sentinelle score`` reads that has a label column (and optionally an
id column); every row is checked before anything is appended, so a bad row leaves the
store as it was.
"""

from __future__ import annotations

from pathlib import Path

from sentinelle import feedback
from sentinelle.errors import UserError
from sentinelle.serving.rows import Reader, detect_format, is_spam_label


def read_file(
    path: Path,
    *,
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str = "id",
    source: str | None = None,
    encoding: str = "utf-8",
) -> list[feedback.Record]:
    """The feedback records of a labelled file (labels spam/ham, 1/0 or true/false)."""
    in_fmt = detect_format(path, fmt, default="txt")
    if in_fmt == "txt":
        raise UserError(f"{path}: plain text has no label column; use csv, tsv or jsonl")
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UserError(f"{path}: cannot read input: {exc.strerror}") from None
    out = []
    with fh:
        reader = Reader(fh, in_fmt, text_column, encoding, str(path))
        for row, line, rec, text, problem in reader.rows():
            where = f"{path}: row {row} (line {line})"
            if problem is not None:
                raise UserError(f"{where}: {problem}")
            if isinstance(rec, dict):
                label, rid = rec.get(label_column), rec.get(id_column)
            else:
                header = reader.header or []
                if label_column not in header:
                    raise UserError(
                        f"{path}: no column {label_column!r} in the header "
                        f"({', '.join(map(repr, header[:10]))}); choose one with --label-column"
                    )
                label = rec[header.index(label_column)]
                rid = rec[header.index(id_column)] if id_column in header else None
            spam = is_spam_label(label)
            if spam is None:
                raise UserError(
                    f"{where}: {label_column} {label!r} is not a label; "
                    "allowed: spam, ham (or 1/0, true/false)"
                )
            rid = None if rid in (None, "") else str(rid)
            out.append(feedback.record(text, "spam" if spam else "ham", rid, source, where=where))
    if not out:
        raise UserError(f"{path}: no rows to import")
    return out
