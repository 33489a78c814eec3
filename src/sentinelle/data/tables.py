"""Tables: rows of cells (a CSV with any delimiter, or a spreadsheet's sheet) read into
:class:`Records`, with the header row found or not and the two columns resolved.

Columns are found in this order:

1. ``ingest.text_column`` / ``ingest.label_column`` as given: a header name, or a 1-based
   position (as ``cut -f`` counts). Digits given as a string are a name when the header has
   that name, else a position.
2. A name the header lacks: the well-known names for that column (``TEXT_NAMES``,
   ``LABEL_NAMES``, case-insensitive). One candidate is used, with a warning that names it;
   several are an error listing them and the ``-S`` overrides that choose one.
3. No header row, and a column given by name: the label is the one column whose first cell
   is a known label value, the text the one other non-empty column (a warning says so);
   otherwise an error says which positions to set.

``ingest.header: auto`` decides whether the first row is a header: it is data when its label
cell holds a known label value (``ingest.spam_labels``/``ham_labels``) and no cell is a
well-known text column name.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import re
import shlex
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sentinelle.errors import UserError
from sentinelle.params import DEFAULT_PARAMS, IngestParams, home

log = logging.getLogger("sentinelle")

TEXT_NAMES = frozenset(
    [
        "text",
        "message",
        "messages",
        "msg",
        "sms",
        "sms_text",
        "text_message",
        "message_body",
        "message_text",
        "content",
        "body",
        "email",
        "mail",
        "comment",
        "v2",
    ]
)
LABEL_NAMES = frozenset(
    ["label", "labels", "class", "category", "spam", "is_spam", "target", "type", "tag", "y", "v1"]
)
SNIFFED = ",;\t|"  # what ingest.delimiter: auto chooses between
SNIFF_LINES = 50
# A multi-line field longer than this (the csv module's default field_size_limit) whose lines
# look like rows is a quote that is never closed; any other long field is a row's text.
FIELD_LIMIT = 131072
SHOWN = 120  # characters of the input an error line quotes, at most
DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}

Cell = object  # str from a CSV; str, float, int, bool or a date from a spreadsheet
Row = tuple[int, list[Cell]]  # (line or row number where it starts, cells)


@dataclass
class Records:
    """Rows as read: raw label values and texts, with where each row starts."""

    rows: list[int] = field(default_factory=list)
    labels: list[object] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    unit: str = "line"  # 'line' for text formats, 'row' for parquet and spreadsheets
    columns: list[str] = field(default_factory=list)  # header / keys found

    def add(self, row: int, label: object, text: object) -> None:
        self.rows.append(row)
        self.labels.append(label)
        self.texts.append(cell_text(text))


@dataclass(frozen=True)
class Table:
    """A table read: its records, whether it had a header, and the columns used."""

    records: Records
    header: bool
    columns: dict[str, str | int]  # {'text': name or 1-based position, 'label': ...}


def label_key(value: object) -> str:
    """How a label value is compared: ``True``/``1``/``1.0``/``" SPAM "`` →
    ``true``/``1``/``1``/``spam``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip().casefold()


def known_labels(p: IngestParams) -> set[str]:
    return {label_key(v) for v in (*p.spam_labels, *p.ham_labels)}


def cell_text(value: object) -> str:
    """A cell as text: a spreadsheet's ``12.0`` is ``12``, an empty cell ``''``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _normal(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", cell_text(name).strip().casefold())


# ------------------------------------------------------------------------ delimiters


def delimiter_param(value: str) -> str | None:
    """``ingest.delimiter`` as one character; ``None`` for ``auto``."""
    if value == "auto":
        return None
    return "\t" if value in ("tab", "\\t") else value


def describe_delimiter(delimiter: str) -> str:
    return DELIMITER_NAMES.get(delimiter, repr(delimiter))


def sniff_delimiter(text: str) -> str | None:
    """The delimiter in ``SNIFFED`` that splits the first records most consistently.

    Each candidate parses the first ``SNIFF_LINES`` records with the csv module (so quoted
    fields holding other delimiters or line breaks stay whole); the winner gives the most
    records of one width of at least two fields, ties going to the earlier candidate.
    ``csv.Sniffer`` is not used: it finds no delimiter in a semicolon export whose quoted
    texts hold semicolons and line breaks (docs/data.md).
    """
    sample = text[:65536]
    best, best_score = None, 0.0
    for delimiter in SNIFFED:
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, strict=False)
        try:
            records = [r for r in itertools.islice(reader, SNIFF_LINES + 1) if r]
        except csv.Error:
            continue
        if len(records) > 1 and len(sample) < len(text):
            records.pop()  # may be cut off by the sample's end
        if not records:
            continue
        width, count = Counter(len(r) for r in records).most_common(1)[0]
        score = count / len(records)
        if width >= 2 and score > best_score:
            best, best_score = delimiter, score
    return best


def csv_rows(text: str, delimiter: str, where: str) -> Iterator[Row]:
    """Yield (first line of the record, fields), skipping blank lines.

    A field of any length is read: a long text is a row problem (``ingest.on_too_long``). A
    record over many lines with a field past ``FIELD_LIMIT`` characters whose lines look like
    rows (most split into as many fields as the first record) is refused as a quote that is
    never closed.
    """
    # No field limit here: the rows' length is ingest.max_chars's business, and every
    # reader sets the same value, so threads cannot undo each other.
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    start, width = 1, 0
    try:
        for fields in reader:
            if reader.line_num > start and fields:
                longest = max(fields, key=len)
                if len(longest) > FIELD_LIMIT and _holds_rows(longest, delimiter, width):
                    raise _unclosed(where, start, reader.line_num, len(longest))
            if fields and any(f.strip() for f in fields):
                width = width or len(fields)
                yield start, list(fields)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"{where}: line {reader.line_num}: not valid CSV ({exc})") from None


def _holds_rows(field: str, delimiter: str, width: int) -> bool:
    """Whether most lines of a multi-line field split into ``width`` fields, as the first
    record does: rows swallowed by a quote that is never closed, not one long text."""
    lines = field.split("\n")[1:]
    rows = sum(line.count(delimiter) == width - 1 for line in lines)
    return width > 1 and len(lines) > 1 and rows * 2 > len(lines)


def _unclosed(where: str, start: int, end: int, length: int) -> UserError:
    return UserError(
        f"{where}: line {start}: a field that starts here runs on past line {end} "
        f"({length} characters, its lines like rows): a quote '\"' that is never closed; "
        'close it, or write a quote inside a quoted field as ""'
    )


def clip(value: object, limit: int = SHOWN) -> str:
    """``repr`` of a value from the input for an error line: at most ``limit`` characters,
    and then its length."""
    text = value if isinstance(value, str) else cell_text(value)
    shown = repr(text[: limit + 1] if isinstance(value, str) else value)
    if len(shown) <= limit:
        return shown
    return f"{shown[: limit - 1]}… ({len(text)} characters)"


def clip_all(values: Iterable[object], limit: int = SHOWN) -> str:
    """Values from the input, comma-separated, cut to about ``limit`` characters in all."""
    out: list[str] = []
    used = 0
    values = list(values)
    for i, value in enumerate(values):
        room = max(limit - used, 20)
        out.append(clip(value, room))
        used += len(out[-1]) + 2
        if used >= limit and i + 1 < len(values):
            out.append(f"... ({len(values) - i - 1} more)")
            break
    return ", ".join(out)


# --------------------------------------------------------------------------- columns


def _position(spec: str | int) -> int | None:
    if isinstance(spec, int):
        return spec
    return int(spec) if spec.isdigit() and int(spec) >= 1 else None


def has_header(first: list[Cell], p: IngestParams) -> bool:
    """``ingest.header``, or for ``auto`` whether ``first`` looks like a header row."""
    if p.header != "auto":
        return p.header
    cells = [cell_text(c).strip() for c in first]
    names = {p.text_column, p.label_column} - {None}
    if any(isinstance(n, str) and _position(n) is None and n in cells for n in names):
        return True
    if any(_normal(c) in TEXT_NAMES for c in cells):
        return True
    labels = known_labels(p)
    at = _position(p.label_column)
    if at is not None:
        return at > len(first) or label_key(first[at - 1]) not in labels
    keys = [label_key(c) for c in first]
    if any(k in LABEL_NAMES and k not in labels for k in keys):
        return True
    return not any(k in labels for k in keys)


def _override(key: str, value: str | int) -> str:
    """``-S settings.yaml:ingest.KEY=VALUE`` as a shell takes it and as ``dvc exp run`` parses
    it (the file is named when the key lives in settings.yaml).

    DVC reads ``-S`` with Hydra's override grammar: a name that would parse as a number,
    a boolean or null, or holds characters such as ``,`` ``;`` ``'``, is single-quoted.
    """
    text = str(value)
    if isinstance(value, str) and (
        not re.fullmatch(r"[A-Za-z_][\w\-./ ]*", text)
        or text.strip() != text
        or text.casefold() in ("true", "false", "null", "nan", "inf")
    ):
        text = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    file = home(f"ingest.{key}")
    prefix = "" if file == DEFAULT_PARAMS else f"{file.name}:"
    arg = f"{prefix}ingest.{key}={text}"
    if re.fullmatch(r"[\w\-./=:]+", arg):
        return f"-S {arg}"
    return f'-S "{arg}"' if not re.search(r'["$`\\!]', arg) else f"-S {shlex.quote(arg)}"


def _missing(where: str, wanted: dict[str, str | int], header: list[str], delimiter: str) -> str:
    missing = [f"ingest.{key}_column = {clip(name, 40)}" for key, name in wanted.items()]
    shown = clip_all(header) or "none"
    hint = ""
    if len(header) == 1:
        for sep in (";", "|", "\t", ","):
            if sep in header[0] and sep != delimiter:
                hint = (
                    f" (the header looks {describe_delimiter(sep)}-separated: "
                    "set ingest.delimiter: auto)"
                )
                break
    return f"{where}: column(s) not found: {', '.join(missing)}; columns found: {shown}{hint}"


def resolve_columns(
    header: list[str], p: IngestParams, where: str, delimiter: str = ","
) -> tuple[int, int]:
    """The (text, label) indexes into ``header`` for the configured or well-known columns."""
    specs = {"text": p.text_column, "label": p.label_column}
    found: dict[str, int] = {}
    for key, spec in specs.items():
        if isinstance(spec, str) and spec in header:
            found[key] = header.index(spec)
        elif (at := _position(spec)) is not None:
            if at > len(header):
                raise UserError(
                    f"{where}: ingest.{key}_column = {spec!r}: the table has only "
                    f"{len(header)} column(s): {clip_all(header)}"
                )
            found[key] = at - 1
    absent = {key: spec for key, spec in specs.items() if key not in found}
    if not absent:
        return found["text"], found["label"]
    known = {"text": TEXT_NAMES, "label": LABEL_NAMES}
    taken = set(found.values())
    candidates = {
        key: [i for i, h in enumerate(header) if _normal(h) in known[key] and i not in taken]
        for key in absent
    }
    if any(not c for c in candidates.values()):
        raise UserError(_missing(where, absent, header, delimiter))
    if any(len(c) > 1 for c in candidates.values()):
        problems = [
            f"ingest.{key}_column = {absent[key]!r} is not a column and "
            f"{len(c)} could be it ({clip_all(header[i] for i in c)})"
            for key, c in candidates.items()
            if len(c) > 1
        ]
        overrides = " ".join(_override(f"{k}_column", header[c[0]]) for k, c in candidates.items())
        raise UserError(f"{where}: {'; '.join(problems)}; choose with e.g. dvc exp run {overrides}")
    for key, (i,) in candidates.items():
        found[key] = i
    log.warning(
        "warning: %s: no column %s; using %s (set %s to choose)",
        where,
        " or ".join(repr(absent[k]) for k in absent),
        " and ".join(f"{header[found[k]]!r} as the {k}" for k in absent),
        " and ".join(f"ingest.{k}_column" for k in absent),
    )
    return found["text"], found["label"]


def _headerless_columns(sample: list[Row], p: IngestParams, where: str) -> tuple[int, int]:
    """The (text, label) indexes of a table without a header row, from its first rows."""
    first = sample[0][1]
    cells = [cell_text(c) for c in first]
    found = {
        key: at - 1
        for key, spec in (("text", p.text_column), ("label", p.label_column))
        if (at := _position(spec)) is not None
    }
    for key, i in found.items():
        if i >= len(cells):
            raise UserError(
                f"{where}: ingest.{key}_column = {i + 1}: the first row has only "
                f"{len(cells)} column(s)"
            )
    labels = known_labels(p)
    label_at = [
        i
        for i in range(len(first))
        if all(i < len(row) and label_key(row[i]) in labels for _, row in sample)
    ]
    if "label" not in found and len(label_at) == 1 and label_at[0] != found.get("text"):
        found["label"] = label_at[0]
    filled = [i for i, c in enumerate(cells) if c.strip() and i != found.get("label")]
    if "text" not in found and len(filled) == 1:
        found["text"] = filled[0]
    if len(found) < 2 or found["text"] == found["label"]:
        label = found.get("label", label_at[0] if label_at else 0)
        longest = max((i for i in range(len(cells)) if i != label), key=lambda i: len(cells[i]))
        shown = clip_all(cells)
        raise UserError(
            f"{where}: no header row (first row: {shown}), so the columns must be given by "
            f"position (1-based); e.g. dvc exp run {_override('label_column', label + 1)} "
            f"{_override('text_column', longest + 1)}"
        )
    guessed = [k for k in ("label", "text") if _position(getattr(p, f"{k}_column")) is None]
    if guessed:
        log.warning(
            "warning: %s: no header row; using %s (set %s to choose)",
            where,
            " and ".join(f"column {found[k] + 1} as the {k}" for k in guessed),
            " and ".join(f"ingest.{k}_column" for k in guessed),
        )
    return found["text"], found["label"]


def _spills(text_at: int, width: list[Cell]) -> bool:
    """Whether the text is the last named column, so extra fields are its own spill-over."""
    filled = [i for i, c in enumerate(width) if cell_text(c).strip()]
    return bool(filled) and text_at >= filled[-1]


def read_table(
    rows: Iterable[Row], p: IngestParams, where: str, unit: str, delimiter: str | None
) -> Table:
    """Records from ``rows``: the header detected, the columns resolved, spill-over joined.

    With a ``delimiter`` (a CSV), fields past a last text column are the text's own
    unquoted delimiters, so they are joined back (as in the Kaggle ``spam.csv``).
    """
    rows = iter(rows)
    sample = list(itertools.islice(rows, SNIFF_LINES))
    if not sample:
        return Table(Records(unit=unit), True, {})
    first = sample[0][1]
    header = has_header(first, p)
    if header:
        names = [cell_text(c).strip().lstrip("\ufeff") for c in first]
        ti, li = resolve_columns(names, p, where, delimiter or "")
        records = Records(unit=unit, columns=names)
        columns: dict[str, str | int] = {"text": names[ti], "label": names[li]}
        body = itertools.chain(sample[1:], rows)
    else:
        ti, li = _headerless_columns(sample, p, where)
        records = Records(unit=unit)
        columns = {"text": ti + 1, "label": li + 1}
        body = itertools.chain(sample, rows)
    spill = delimiter is not None and _spills(ti, first)
    for n, fields in body:
        label = fields[li] if li < len(fields) else ""
        if spill and len(fields) > ti + 1:
            parts = [cell_text(f) for f in fields[ti:]]
            while len(parts) > 1 and not parts[-1]:
                parts.pop()
            text: object = delimiter.join(parts)
        else:
            text = fields[ti] if ti < len(fields) else ""
        records.add(n, label, text)
    return Table(records, header, columns)
