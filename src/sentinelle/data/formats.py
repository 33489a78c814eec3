"""How fetched bytes are read: the encoding and the format detected (explicit params win),
and the file parsed into :class:`Records`: one raw label and one text per row, with the
line (or row) where each starts, for error messages.

Formats: ``uci`` (``label<TAB>text``, no header), ``kaggle`` (the ``spam.csv``
with ``v1,v2`` and spill-over columns), ``csv`` (any delimiter, ``ingest.delimiter``) and
``tsv``, ``xlsx``/``xls``/``ods`` (``data.spreadsheets``) read as tables (``data.tables``:
header or not, columns by name or position), and ``jsonl``/``parquet`` by column name.
A file that is plainly not a table (an HTML page, a PDF, one JSON document, an image, ...)
is refused in one line that says what it looks like.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pyarrow
import pyarrow.parquet as pq

from sentinelle.data import spreadsheets, tables
from sentinelle.data.sources import Fetched
from sentinelle.data.tables import Records
from sentinelle.errors import UserError
from sentinelle.params import IngestParams

log = logging.getLogger("sentinelle")

LABELS = ("ham", "spam")
FORMATS = ("uci", "kaggle", "csv", "tsv", "jsonl", "parquet", "xlsx", "xls", "ods")
KAGGLE_HEADER = ("v1", "v2")
# Single-byte encodings tried, in order, when a file is not UTF-8. cp1252 has five
# undefined bytes; latin-1 decodes anything (the Kaggle spam.csv needs it).
FALLBACK_ENCODINGS = ("cp1252", "latin-1")


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # the codec used ('utf-8', 'utf-8-sig', 'utf-16', 'cp1252', ...)
    warning: str | None  # set when a single-byte fallback was used


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode(data: bytes, where: str, encoding: str | None) -> Decoded:
    """Decode text: the explicit ``encoding``; else UTF-8 (BOM aware), then a single-byte
    fallback. A UTF-8 byte-order mark is skipped whatever the encoding (it is never text),
    and byte offsets in errors count from the file's first byte."""
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise UserError(
                f"ingest.encoding = {tables.clip(encoding, 40)} is not a known encoding; "
                "use e.g. utf-8, latin-1, cp1252, or null to detect"
            ) from None
        if codec.startswith(("utf-16", "utf-32")):
            skip = 0  # their own marks; a UTF-8 one cannot start them
        try:
            return Decoded(data[skip:].decode(encoding), encoding, None)
        except UnicodeDecodeError as exc:
            at = exc.start + skip
            raise UserError(
                f"{where}: line {_line_of(data, at)}: not valid {encoding} (byte "
                f"{data[at]:#04x} at byte offset {at}); set ingest.encoding to the file's "
                "encoding, or null to detect"
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return Decoded(data.decode("utf-16"), "utf-16", None)
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{where}: has a UTF-16 byte-order mark but is not valid UTF-16 "
                f"(byte offset {exc.start}); set ingest.encoding"
            ) from None
    if skip:
        try:
            return Decoded(data[skip:].decode("utf-8"), "utf-8-sig", None)
        except UnicodeDecodeError as exc:
            at = exc.start + skip
            raise UserError(
                f"{where}: line {_line_of(data, at)}: has a UTF-8 byte-order mark but is not "
                f"valid UTF-8 (byte {data[at]:#04x} at byte offset {at}); set ingest.encoding "
                "to the file's encoding, e.g. cp1252 or latin-1 (the mark is skipped)"
            ) from None
    try:
        return Decoded(data.decode("utf-8"), "utf-8", None)
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    for fallback in FALLBACK_ENCODINGS:
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        warning = (
            f"{where} is not valid UTF-8 (line {_line_of(data, first_bad)}, byte "
            f"{data[first_bad]:#04x} at byte offset {first_bad}); decoded as {fallback}. "
            "Set ingest.encoding to "
            "silence this or to choose another encoding"
        )
        return Decoded(text, fallback, warning)
    raise AssertionError("latin-1 decodes any bytes")


# ------------------------------------------------------------------ what the file is


def _looks_binary(data: bytes) -> int | None:
    """Offset of the first control byte if the start of ``data`` is mostly not text."""
    sample = data[:8192]
    if not sample or sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    controls = [i for i, b in enumerate(sample) if (b < 0x20 and b not in b"\t\n\r\f") or b == 0x7F]
    return controls[0] if len(controls) > max(2, len(sample) // 20) else None


# Files that are not a table, by their first bytes: what they look like, and what to do.
NOT_A_TABLE = (
    (b"%PDF-", "a PDF document", "export the table it holds as CSV or XLSX"),
    (b"{\\rtf", "an RTF document", "save it as CSV or XLSX"),
    (b"\x89PNG", "a PNG image", "ingest.source must name the data file"),
    (b"\xff\xd8\xff", "a JPEG image", "ingest.source must name the data file"),
    (b"GIF8", "a GIF image", "ingest.source must name the data file"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV or Parquet"),
)
EXPECTED = "expected labelled messages as CSV/TSV, JSON Lines, Parquet or a spreadsheet"


# Markup: leading comments and processing instructions, then a tag an HTML page holds early.
_COMMENTS = re.compile(rb"(\s*(<!--.*?-->|<\?.*?\?>))*\s*", re.S)
_HTML = re.compile(
    rb"<(!doctype\s+html|html|head|body|title|meta|script|link|style|div|table|p)[\s>/]"
)
_PAGE = re.compile(rb"<(!doctype\s+html|html|head|body)[\s>]")
_TAG = re.compile(rb"<[a-z_][\w.:-]*(\s[^<>]*)?/?>")


def _not_a_table(data: bytes, where: str, fmt: str) -> UserError | None:
    """An error naming what ``data`` looks like when it is plainly not a table: a binary
    document, an HTML page, an XML or JSON document (whatever ``ingest.format`` says)."""
    for magic, what, todo in NOT_A_TABLE:
        if data.startswith(magic):
            return UserError(f"{where}: looks like {what}, not a table; {EXPECTED} ({todo})")
    start = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    body = start[_COMMENTS.match(start).end() :]
    first = tables.clip(start.split(b"\n", 1)[0][:40].decode("utf-8", "replace"), 60)
    if start.startswith(b"<") and (_HTML.match(body) or _PAGE.search(start)):
        return UserError(
            f"{where}: looks like an HTML page, not a table (it starts with {first}); "
            f"{EXPECTED}: if it was saved from a web page, download the raw file instead"
        )
    if start.startswith(b"<?xml") or (start.startswith(b"<") and _TAG.match(body)):
        return UserError(
            f"{where}: looks like an XML document, not a table (it starts with {first}); "
            f"{EXPECTED}: export the messages from it as CSV or JSON Lines"
        )
    if start.startswith((b"[", b"{")):
        return _json_document(data, where, fmt)
    if fmt == "auto" and spreadsheets.office_document(data):
        return UserError(
            f"{where}: looks like an office document that is not a spreadsheet "
            f"(a text or a presentation); {EXPECTED}"
        )
    return None


def _json_document(data: bytes, where: str, fmt: str) -> UserError | None:
    """An error when ``data`` is one JSON document (an array, or an object over many
    lines) rather than JSON Lines; ``None`` when its first line is a whole JSON object, or
    when it is not JSON at all and not meant to be (the parser then reports the line)."""
    first = data.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0]
    try:
        if isinstance(json.loads(first), dict):
            return None
    except (ValueError, RecursionError):
        pass
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        # Broken JSON: for a CSV, a first line that is only an opening bracket says enough.
        if fmt == "jsonl" or first.strip() not in (b"[", b"{", b"[{", b"[ {"):
            return None
        at = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        return UserError(
            f"{where}: looks like a JSON document (not valid JSON{at}), not a table; {EXPECTED}"
        )
    what = "an array" if isinstance(doc, list) else "an object over several lines"
    return UserError(
        f"{where}: is one JSON document ({what}), not JSON Lines (one object per line); "
        f"convert it, e.g. jq -c '.[]' FILE > FILE.jsonl"
    )


def detect_format(fetched: Fetched, text: str, labels: set[str], delimiter: str | None) -> str:
    """Pick a text format from the file name, then from the first line."""
    suffix = PurePosixPath(fetched.name).suffix.lower()
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    head = [f.strip().strip('"').casefold() for f in first.split(",")]
    first_field = first.partition("\t")[0].strip().casefold()
    if suffix in (".jsonl", ".ndjson") or (
        suffix in ("", ".txt", ".json") and first.lstrip().startswith("{")
    ):
        return "jsonl"
    if delimiter is None and tuple(head[:2]) == KAGGLE_HEADER:
        return "kaggle"
    if delimiter is None and "\t" in first and first_field in labels:
        return "uci"
    if delimiter is None and (suffix in (".tsv", ".tab") or (suffix != ".csv" and "\t" in first)):
        return "tsv"
    if delimiter is not None or suffix == ".csv" or any(d in first for d in tables.SNIFFED):
        return "csv"
    raise UserError(
        f"{fetched.where}: cannot tell the format from the name or the first line "
        f"{first[:60]!r}; set ingest.format to one of {', '.join(FORMATS)}"
    )


# ------------------------------------------------------------------------- formats


def _parse_uci(text: str, where: str) -> Records:
    out = Records(columns=["label", "text"])
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        label, sep, message = line.partition("\t")
        if not sep:
            raise UserError(
                f"{where}: line {n}: expected 'label<TAB>text' (UCI layout), found no tab: "
                f"{line[:60]!r}; set ingest.format if the file is CSV/TSV with a header"
            )
        out.add(n, label, message)
    return out


def _parse_kaggle(text: str, where: str) -> Records:
    """``v1`` (label), ``v2`` (text), and spill-over columns that held the text's commas."""
    rows = tables.csv_rows(text, ",", where)
    try:
        _, header = next(rows)
    except StopIteration:
        return Records()
    header = [h.strip().lstrip("\ufeff") for h in header]
    if tuple(h.casefold() for h in header[:2]) != KAGGLE_HEADER:
        raise UserError(
            f"{where}: line 1: expected the Kaggle header 'v1,v2,...'; "
            f"columns found: {tables.clip_all(header)}; set ingest.format"
        )
    out = Records(columns=header)
    for n, fields in rows:
        parts = fields[1:]
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        out.add(n, fields[0], ",".join(parts))
    return out


def _named(p: IngestParams, what: str) -> None:
    for key in ("text_column", "label_column"):
        if isinstance(getattr(p, key), int):
            raise UserError(
                f"ingest.{key} = {getattr(p, key)}: {what} columns have names, not positions; "
                f"set ingest.{key} to a name"
            )


def _parse_jsonl(text: str, where: str, p: IngestParams) -> tuple[Records, dict[str, str]]:
    _named(p, "JSON Lines")
    out = Records()
    text_col = label_col = ""
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{where}: line {n}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "JSON Lines needs one object per line"
            ) from None
        if not isinstance(obj, dict):
            raise UserError(
                f"{where}: line {n}: expected a JSON object, found {type(obj).__name__}"
            )
        if not out.columns:
            out.columns = list(obj)
            ti, li = tables.resolve_columns(out.columns, p, f"{where}: line {n}")
            text_col, label_col = out.columns[ti], out.columns[li]
        out.add(n, obj.get(label_col), obj.get(text_col))
    return out, {"text": text_col, "label": label_col}


def _parse_parquet(data: bytes, where: str, p: IngestParams) -> tuple[Records, dict[str, str]]:
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
    except (pyarrow.ArrowException, OSError) as exc:
        raise UserError(f"{where}: not a valid Parquet file ({exc})") from None
    found = list(pf.schema_arrow.names)
    ti, li = tables.resolve_columns(found, p, where)
    out = Records(unit="row", columns=found)
    n = 0
    for batch in pf.iter_batches(columns=[found[li], found[ti]], batch_size=65536):
        for label, message in zip(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
        ):
            n += 1
            out.add(n, label, message)
    return out, {"text": found[ti], "label": found[li]}


@dataclass(frozen=True)
class Parsed:
    """The records read, and how: what the data report says about the file's layout."""

    records: Records
    format: str
    encoding: str | None  # None for parquet and spreadsheets
    where: str  # how errors name the rows' file (a spreadsheet's adds the sheet)
    delimiter: str | None = None  # csv/tsv/uci/kaggle
    header: bool | None = None  # None for jsonl and parquet (named by their schema)
    sheet: str | None = None  # spreadsheets
    columns: dict[str, str | int] = field(default_factory=dict)


def _check_settings(p: IngestParams, fmt: str, kind: str | None, where: str) -> None:
    """Refuse settings that the file's format cannot use."""
    delimiter = tables.delimiter_param(p.delimiter)
    if p.sheet is not None and kind is None:
        raise UserError(
            f"{where}: ingest.sheet = {p.sheet!r} is set but the source is not a spreadsheet; "
            "set ingest.sheet: null"
        )
    if delimiter is not None and fmt in ("tsv", "uci") and delimiter != "\t":
        raise UserError(
            f"ingest.delimiter = {p.delimiter!r} contradicts ingest.format = {fmt} "
            "(tab-separated); set ingest.format: csv (or auto)"
        )


def parse(fetched: Fetched, p: IngestParams) -> Parsed:
    """Decode and parse the fetched bytes into records (format/encoding from params or detected)."""
    where, data = fetched.where, fetched.data
    if not data.strip():
        raise UserError(f"{where}: the file is empty; {EXPECTED}")
    suffix = PurePosixPath(fetched.name).suffix.lower()
    kind = spreadsheets.kind(data)
    fmt = p.format
    if fmt == "auto" and (data[:4] == b"PAR1" or suffix == ".parquet"):
        fmt = "parquet"
    if fmt == "auto" and kind is not None:
        fmt = kind
    _check_settings(p, fmt, kind if fmt in spreadsheets.KINDS else None, where)
    if fmt == "parquet":
        records, columns = _parse_parquet(data, where, p)
        return Parsed(records, "parquet", None, where, columns=columns)
    if fmt in spreadsheets.KINDS:
        sheet, sheets, rows = spreadsheets.rows(data, fmt, where, p.sheet, p.max_bytes)
        at = f"{where} (sheet {sheet!r})"
        try:
            table = tables.read_table(rows, p, at, "row", None)
        except UserError as exc:
            others = [s for s in sheets if s != sheet]
            if p.sheet is not None or not others:
                raise
            shown = ", ".join(map(repr, others))
            raise UserError(
                f"{exc}; the workbook has other sheets: {shown} (set ingest.sheet)"
            ) from None
        return Parsed(table.records, fmt, None, at, None, table.header, sheet, table.columns)
    if (refused := _not_a_table(data, where, fmt)) is not None:
        raise refused
    if fmt == "auto" and (bad := _looks_binary(data)) is not None:
        raise UserError(
            f"{where}: looks like a binary file, not text (control byte {data[bad]:#04x} at "
            f"offset {bad}); {EXPECTED} (or .gz, .zip)"
        )
    decoded = decode(data, where, p.encoding)
    if decoded.warning:
        log.warning("warning: %s", decoded.warning)
    text = decoded.text.lstrip("\ufeff")
    delimiter = tables.delimiter_param(p.delimiter)
    if fmt == "auto":
        labels = tables.known_labels(p) | set(LABELS)
        fmt = detect_format(fetched, text, labels, delimiter)
        log.debug("%s: format %s, encoding %s (detected)", where, fmt, decoded.encoding)
    encoding = decoded.encoding
    if fmt == "uci":
        records = _parse_uci(text, where)
        return Parsed(records, fmt, encoding, where, "\t", False, None, {"text": 2, "label": 1})
    if fmt == "kaggle":
        records = _parse_kaggle(text, where)
        columns = {"text": "v2", "label": "v1"}
        return Parsed(records, fmt, encoding, where, ",", True, None, columns)
    if fmt == "jsonl":
        records, columns = _parse_jsonl(text, where, p)
        return Parsed(records, fmt, encoding, where, columns=columns)
    if delimiter is None:
        delimiter = "\t" if fmt == "tsv" else (tables.sniff_delimiter(text) or ",")
    table = tables.read_table(tables.csv_rows(text, delimiter, where), p, where, "line", delimiter)
    return Parsed(table.records, fmt, encoding, where, delimiter, table.header, None, table.columns)
