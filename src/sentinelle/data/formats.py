"""How fetched bytes are read: the encoding and the format detected (explicit params win),
and the file parsed into :class:`Records`: one raw label and one text per row, with the
line (or row) where each starts, for error messages.

Formats: ``uci`` (``label<TAB>text``, no header), ``kaggle`` (the ``spam.csv``
with ``v1,v2`` and spill-over columns), and ``csv``/``tsv``/``jsonl``/``parquet``
with ``ingest.text_column``/``ingest.label_column``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pyarrow
import pyarrow.parquet as pq

from sentinelle.data.sources import Fetched
from sentinelle.errors import UserError
from sentinelle.params import IngestParams

log = logging.getLogger("sentinelle")

LABELS = ("ham", "spam")
FORMATS = ("uci", "kaggle", "csv", "tsv", "jsonl", "parquet")
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
    fallback."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UserError(
                f"ingest.encoding = {encoding!r} is not a known encoding; "
                "use e.g. utf-8, latin-1, cp1252, or null to detect"
            ) from None
        try:
            return Decoded(data.decode(encoding), encoding, None)
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{where}: line {_line_of(data, exc.start)}: not valid {encoding} "
                f"(byte {data[exc.start]:#04x}); set ingest.encoding to the file's encoding, "
                "or null to detect"
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return Decoded(data.decode("utf-16"), "utf-16", None)
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{where}: has a UTF-16 byte-order mark but is not valid UTF-16 "
                f"(byte offset {exc.start}); set ingest.encoding"
            ) from None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return Decoded(data.decode("utf-8-sig"), "utf-8-sig", None)
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{where}: line {_line_of(data, exc.start)}: has a UTF-8 byte-order mark but "
                f"is not valid UTF-8 (byte {data[exc.start]:#04x}); set ingest.encoding"
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
            f"{data[first_bad]:#04x}); decoded as {fallback}. Set ingest.encoding to "
            "silence this or to choose another encoding"
        )
        return Decoded(text, fallback, warning)
    raise AssertionError("latin-1 decodes any bytes")


# ------------------------------------------------------------------------- formats


@dataclass
class Records:
    """Rows as read: raw label values and texts, with where each row starts."""

    rows: list[int] = field(default_factory=list)
    labels: list[object] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    unit: str = "line"  # 'line' for text formats, 'row' for parquet
    columns: list[str] = field(default_factory=list)  # header / keys found

    def add(self, row: int, label: object, text: object) -> None:
        self.rows.append(row)
        self.labels.append(label)
        self.texts.append("" if text is None else text if isinstance(text, str) else str(text))


def label_key(value: object) -> str:
    """How a label value is compared: ``True``/``1``/``1.0``/``" SPAM "`` →
    ``true``/``1``/``1``/``spam``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip().casefold()


def _looks_binary(data: bytes) -> int | None:
    """Offset of the first control byte if the start of ``data`` is mostly not text."""
    sample = data[:8192]
    if not sample or sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    controls = [i for i, b in enumerate(sample) if (b < 0x20 and b not in b"\t\n\r\f") or b == 0x7F]
    return controls[0] if len(controls) > max(2, len(sample) // 20) else None


def detect_format(fetched: Fetched, text: str, labels: set[str]) -> str:
    """Pick the format from the file name, then from the first line."""
    suffix = PurePosixPath(fetched.name).suffix.lower()
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    head = [f.strip().strip('"').casefold() for f in first.split(",")]
    first_field = first.partition("\t")[0].strip().casefold()
    if suffix in (".jsonl", ".ndjson") or (
        suffix in ("", ".txt", ".json") and first.lstrip().startswith("{")
    ):
        return "jsonl"
    if tuple(head[:2]) == KAGGLE_HEADER:
        return "kaggle"
    if "\t" in first and first_field in labels:
        return "uci"
    if suffix in (".tsv", ".tab") or (suffix != ".csv" and "\t" in first):
        return "tsv"
    if suffix == ".csv" or "," in first:
        return "csv"
    raise UserError(
        f"{fetched.where}: cannot tell the format from the name or the first line "
        f"{first[:60]!r}; set ingest.format to one of {', '.join(FORMATS)}"
    )


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


def _csv_rows(text: str, delimiter: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line of the record, fields), skipping blank lines."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    start = 1
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"{where}: line {reader.line_num}: not valid CSV ({exc})") from None


def _missing_columns(where: str, wanted: dict[str, str], found: list[str]) -> UserError:
    missing = [f"{key} = {name!r}" for key, name in wanted.items() if name not in found]
    shown = ", ".join(repr(c) for c in found[:20]) or "none"
    hint = ""
    if len(found) == 1:
        for sep, word in ((";", "';'"), ("|", "'|'"), ("\t", "tab"), (",", "','")):
            if sep in found[0]:
                hint = (
                    f" (the header looks {word}-separated; accepted: ',' with ingest.format "
                    "csv, tab with tsv)"
                )
                break
    return UserError(
        f"{where}: column(s) not found: {', '.join(missing)}; columns found: {shown}{hint}"
    )


def _parse_delimited(
    text: str, where: str, delimiter: str, text_col: str, label_col: str
) -> Records:
    rows = _csv_rows(text, delimiter, where)
    try:
        _, header = next(rows)
    except StopIteration:
        return Records()
    header = [h.strip().lstrip("\ufeff") for h in header]
    wanted = {"ingest.text_column": text_col, "ingest.label_column": label_col}
    if text_col not in header or label_col not in header:
        raise _missing_columns(where, wanted, header)
    ti, li = header.index(text_col), header.index(label_col)
    out = Records(columns=header)
    for n, fields in rows:
        out.add(n, fields[li] if li < len(fields) else "", fields[ti] if ti < len(fields) else "")
    return out


def _parse_kaggle(text: str, where: str) -> Records:
    """``v1`` (label), ``v2`` (text), and spill-over columns that held the text's commas."""
    rows = _csv_rows(text, ",", where)
    try:
        _, header = next(rows)
    except StopIteration:
        return Records()
    header = [h.strip().lstrip("\ufeff") for h in header]
    if tuple(h.casefold() for h in header[:2]) != KAGGLE_HEADER:
        raise UserError(
            f"{where}: line 1: expected the Kaggle header 'v1,v2,...'; "
            f"columns found: {', '.join(map(repr, header[:20]))}; set ingest.format"
        )
    out = Records(columns=header)
    for n, fields in rows:
        parts = fields[1:]
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        out.add(n, fields[0], ",".join(parts))
    return out


def _parse_jsonl(text: str, where: str, text_col: str, label_col: str) -> Records:
    out = Records()
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
            if text_col not in obj or label_col not in obj:
                raise _missing_columns(
                    f"{where}: line {n}",
                    {"ingest.text_column": text_col, "ingest.label_column": label_col},
                    list(obj),
                )
        out.add(n, obj.get(label_col), obj.get(text_col))
    return out


def _parse_parquet(data: bytes, where: str, text_col: str, label_col: str) -> Records:
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
    except (pyarrow.ArrowException, OSError) as exc:
        raise UserError(f"{where}: not a valid Parquet file ({exc})") from None
    found = pf.schema_arrow.names
    if text_col not in found or label_col not in found:
        raise _missing_columns(
            where, {"ingest.text_column": text_col, "ingest.label_column": label_col}, found
        )
    out = Records(unit="row", columns=list(found))
    n = 0
    for batch in pf.iter_batches(columns=[label_col, text_col], batch_size=65536):
        for label, message in zip(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
        ):
            n += 1
            out.add(n, label, message)
    return out


@dataclass(frozen=True)
class Parsed:
    records: Records
    format: str
    encoding: str | None  # None for parquet


def parse(fetched: Fetched, p: IngestParams) -> Parsed:
    """Decode and parse the fetched bytes into records (format/encoding from params or detected)."""
    where, data = fetched.where, fetched.data
    if not data.strip():
        raise UserError(
            f"{where}: the file is empty; expected labelled messages ({', '.join(FORMATS)})"
        )
    is_parquet = data[:4] == b"PAR1"
    fmt = p.format
    if fmt == "auto" and (is_parquet or PurePosixPath(fetched.name).suffix.lower() == ".parquet"):
        fmt = "parquet"
    if fmt == "parquet":
        records = _parse_parquet(data, where, p.text_column, p.label_column)
        return Parsed(records, "parquet", None)
    if fmt == "auto" and (bad := _looks_binary(data)) is not None:
        raise UserError(
            f"{where}: looks like a binary file, not text (control byte {data[bad]:#04x} at "
            f"offset {bad}); accepted: UTF-8 or single-byte text ({', '.join(FORMATS[:5])}), "
            "Parquet, .gz, .zip"
        )
    decoded = decode(data, where, p.encoding)
    if decoded.warning:
        log.warning("warning: %s", decoded.warning)
    text = decoded.text.lstrip("\ufeff")
    if fmt == "auto":
        labels = {label_key(v) for v in (*p.spam_labels, *p.ham_labels, *LABELS)}
        fmt = detect_format(fetched, text, labels)
        log.debug("%s: format %s, encoding %s (detected)", where, fmt, decoded.encoding)
    if fmt == "uci":
        records = _parse_uci(text, where)
    elif fmt == "kaggle":
        records = _parse_kaggle(text, where)
    elif fmt in ("csv", "tsv"):
        records = _parse_delimited(
            text, where, "," if fmt == "csv" else "\t", p.text_column, p.label_column
        )
    else:
        records = _parse_jsonl(text, where, p.text_column, p.label_column)
    return Parsed(records, fmt, decoded.encoding)
