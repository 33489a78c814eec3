"""Spreadsheets (``.xlsx``, ``.xls``, ``.ods``), read with python-calamine.

One sheet is read (``ingest.sheet``: a name or a 1-based index; ``None`` = the first), as
rows of cells for ``data.tables``. An ``.xlsx`` or ``.ods`` is a zip: its members'
unpacked size is held to ``ingest.max_bytes`` before anything is read, as for any source.
"""

from __future__ import annotations

import difflib
import io
import zipfile
from collections.abc import Iterator

import python_calamine

from sentinelle.data.tables import Row, cell_text, clip, clip_all
from sentinelle.errors import UserError

KINDS = ("xlsx", "xls", "ods")
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the container of .xls (and .doc, .ppt)
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"


def _members(data: bytes) -> zipfile.ZipFile | None:
    if data[:4] != b"PK\x03\x04":
        return None
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return None


def office_document(data: bytes) -> bool:
    """Whether ``data`` is an Office Open XML or OpenDocument file (of any kind)."""
    archive = _members(data)
    if archive is None:
        return data.startswith(OLE2)
    names = set(archive.namelist())
    return "[Content_Types].xml" in names or "mimetype" in names


def kind(data: bytes) -> str | None:
    """``xlsx``, ``xls`` or ``ods`` when ``data`` is such a workbook, else ``None``."""
    if data.startswith(OLE2):
        # The stream that holds an .xls workbook is named "Workbook" (UTF-16 in the directory).
        return "xls" if "Workbook".encode("utf-16-le") in data else None
    archive = _members(data)
    if archive is None:
        return None
    names = set(archive.namelist())
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "mimetype" in names and archive.read("mimetype").startswith(ODS_MIMETYPE):
        return "ods"
    return None


def _pick(names: list[str], sheet: str | int | None, where: str) -> str:
    shown = clip_all(names)
    if sheet is None:
        return names[0]
    if isinstance(sheet, str) and sheet in names:
        return sheet
    index = sheet if isinstance(sheet, int) else int(sheet) if sheet.isdigit() else None
    if index is not None:
        if 1 <= index <= len(names):
            return names[index - 1]
        raise UserError(
            f"{where}: ingest.sheet = {sheet!r}: the workbook has {len(names)} sheet(s): {shown}"
        )
    hint = difflib.get_close_matches(sheet, names, n=1)
    dym = f" (did you mean {clip(hint[0], 40)}?)" if hint else ""
    raise UserError(f"{where}: ingest.sheet = {sheet!r} is not a sheet{dym}; its sheets: {shown}")


def rows(
    data: bytes, fmt: str, where: str, sheet: str | int | None, max_bytes: int
) -> tuple[str, list[str], Iterator[Row]]:
    """The chosen sheet's name, all the sheets' names, and the chosen sheet's non-blank rows
    (1-based row numbers, cells)."""
    archive = _members(data)
    if archive is not None:
        unpacked = sum(i.file_size for i in archive.infolist())
        if unpacked > max_bytes:
            raise UserError(
                f"{where}: once decompressed, {unpacked} bytes is larger than "
                f"ingest.max_bytes = {max_bytes}; raise ingest.max_bytes or use a smaller file"
            )
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = list(book.sheet_names)
        if not names:
            raise UserError(f"{where}: the workbook has no sheets")
        name = _pick(names, sheet, where)
        values = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except python_calamine.CalamineError as exc:
        raise UserError(f"{where}: not a readable {fmt} workbook ({exc})") from None

    def nonblank() -> Iterator[Row]:
        for n, cells in enumerate(values, start=1):
            if any(cell_text(c).strip() for c in cells):
                yield n, list(cells)

    return name, names, nonblank()
