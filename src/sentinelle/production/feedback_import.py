"""``sentinelle feedback import``: reported verdicts from a file into the feedback store.

Reads any file ``sentinelle score`` reads that has a label column (and optionally an
id column); every row is checked before anything is appended, so a bad row leaves the
store as it was.
"""

from __future__ import annotations

from pathlib import Path

from sentinelle import feedback_store
from sentinelle.errors import UserError
from sentinelle.serving.rows import labelled_rows, spam_label


def read_file(
    path: Path,
    *,
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str = "id",
    source: str | None = None,
    reporter: str | None = None,
    encoding: str = "utf-8",
) -> list[feedback_store.Record]:
    """The feedback records of a labelled file (labels spam/ham, 1/0 or true/false)."""
    out = []
    for where, rec, header, text in labelled_rows(path, fmt, text_column, encoding):
        if isinstance(rec, dict):
            label, rid = rec.get(label_column), rec.get(id_column)
        else:
            header = header or []
            if label_column not in header:
                raise UserError(
                    f"{path}: no column {label_column!r} in the header "
                    f"({', '.join(map(repr, header[:10]))}); choose one with --label-column"
                )
            label = rec[header.index(label_column)]
            rid = rec[header.index(id_column)] if id_column in header else None
        spam = spam_label(label, label_column, where)
        rid = None if rid in (None, "") else str(rid)
        out.append(
            feedback_store.record(
                text, "spam" if spam else "ham", rid, source, reporter=reporter, where=where
            )
        )
    if not out:
        raise UserError(f"{path}: no rows to import")
    return out
