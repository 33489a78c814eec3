"""Files as users export them: any delimiter, no header, other column names, spreadsheets,
and files that are not tables at all. Part of the malformed-input corpus: each case ingests
with the expected layout in data/report.json or fails with the expected one-line message,
the previous outputs left byte-identical.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import openpyxl
import pandas as pd
import pytest
import xlwt

from ingest_support import Case, check_case, messages, previous_run, run_script

P = messages(30, 10)  # 40 distinct rows: 30 ham, 10 spam
SPAM = {t for label, t in P if label == "spam"}


def delimited(rows: list[list[Any]], delimiter: str = ",", newline: str = "\n") -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=delimiter, lineterminator=newline).writerows(rows)
    return buf.getvalue()


def xlsx(sheets: dict[str, list[list[Any]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def xls(sheets: dict[str, list[list[Any]]]) -> bytes:
    book = xlwt.Workbook()
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                sheet.write(i, j, value)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def ods(rows: list[list[Any]], name: str = "Sheet1") -> bytes:
    """A minimal OpenDocument spreadsheet (what LibreOffice reads and writes)."""

    def cell(value: Any) -> str:
        if isinstance(value, int):
            return (
                f'<table:table-cell office:value-type="float" office:value="{value}">'
                f"<text:p>{value}</text:p></table:table-cell>"
            )
        return (
            '<table:table-cell office:value-type="string">'
            f"<text:p>{escape(value)}</text:p></table:table-cell>"
        )

    body = "".join(
        "<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in rows
    )
    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} '
        f'office:version="1.2"><office:body><office:spreadsheet><table:table table:name="{name}">'
        f"{body}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", content)
        zf.writestr(
            "META-INF/manifest.xml",
            "<manifest:manifest "
            'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
            '<manifest:file-entry manifest:full-path="/" '
            'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            "</manifest:manifest>",
        )
    return buf.getvalue()


def docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def labelled(
    spam: Any = "spam", ham: Any = "ham", text: Any = lambda t: t, pairs: list = P
) -> list[list[Any]]:
    """Rows [label, text] with the labels spelled ``spam``/``ham``."""
    return [[spam if label == "spam" else ham, text(t)] for label, t in pairs]


SEMICOLON_EXPORT = delimited(
    [["id", "message_body", "is_spam", "received_at"]]
    + [
        [i, f"{t}; ok, thanks", int(label == "spam"), f"2024-01-{i % 28 + 1:02}"]
        for i, (label, t) in enumerate(P, start=1)
    ],
    ";",
)
HEADERLESS = delimited([[label, f"Huh, {t}"] for label, t in P])
COLUMNS = {"text": "text", "label": "label"}


def texts_hold(fragment: str, count: int) -> Any:
    def check(workdir: Path) -> None:
        found = [
            t
            for split in ("train", "test")
            for t in pd.read_parquet(workdir / f"data/raw/{split}.parquet")["text"]
            if fragment in t
        ]
        assert len(found) == count, found

    return check


def spam_count(workdir: Path) -> None:
    frames = [pd.read_parquet(workdir / f"data/raw/{s}.parquet") for s in ("train", "test")]
    both = pd.concat(frames)
    assert int((both["label"] == "spam").sum()) == 10 and len(both) == 40


CASES = [
    # ------------------------------------------------------------------ delimiters
    Case(
        "semicolon-export",
        "crm.csv",
        SEMICOLON_EXPORT.encode(),
        expect={
            "delimiter": ";",
            "header": True,
            "columns": {"text": "message_body", "label": "is_spam"},
            "rows": 40,
        },
        warning="no column 'text' or 'label'; using 'message_body' as the text and "
        "'is_spam' as the label (set ingest.text_column and ingest.label_column to choose)",
        check=texts_hold("; ok, thanks", 40),
    ),
    Case(
        "pipe-export",
        "export.txt",
        delimited([["label", "text"], *labelled(text=lambda t: f"{t} | see, you")], "|").encode(),
        expect={"format": "csv", "delimiter": "|", "header": True, "columns": COLUMNS},
        check=texts_hold(" | see, you", 40),
    ),
    Case(
        "cp1252-crlf-semicolons",
        "excel.csv",
        delimited(
            [
                ["Category", "Message"],
                *labelled(text=lambda t: f"{t} \u20ac5;\r\nbye"),
                ["ham", "caf\xe9 at 5 \xa31"],
            ],
            ";",
            "\r\n",
        ).encode("cp1252"),
        expect={
            "encoding": "cp1252",
            "delimiter": ";",
            "columns": {"text": "Message", "label": "Category"},
            "rows_read": 41,
        },
        warning="using 'Message' as the text and 'Category' as the label",
        check=texts_hold(" \u20ac5;\r\nbye", 40),
    ),
    Case(
        "explicit-delimiter",
        "export.txt",
        delimited([["label", "text"], *labelled()], ":").encode(),
        params={"delimiter": ":"},
        expect={"delimiter": ":", "columns": COLUMNS, "rows": 40},
    ),
    Case(
        "tab-as-backslash-t",
        "export.csv",
        delimited([["label", "text"], *labelled(text=lambda t: f"{t}, ok")], "\t").encode(),
        params={"delimiter": "\\t"},
        expect={"format": "csv", "delimiter": "\t", "columns": COLUMNS},
        check=texts_hold(", ok", 40),
    ),
    Case(
        "delimiter-contradicts-tsv",
        "export.tsv",
        delimited([["label", "text"], *labelled()], "\t").encode(),
        params={"format": "tsv", "delimiter": ";"},
        error="ingest.delimiter = ';' contradicts ingest.format = tsv (tab-separated); "
        "set ingest.format: csv (or auto)",
    ),
    # ------------------------------------------------------------------- no header
    Case(
        "headerless-positions",
        "noheader.csv",
        HEADERLESS.encode(),
        params={"text_column": 2, "label_column": 1},
        expect={"header": False, "columns": {"text": 2, "label": 1}, "rows": 40},
        check=texts_hold("Huh, ", 40),
    ),
    Case(
        "headerless-positions-as-strings",
        "noheader.csv",
        HEADERLESS.encode(),
        params={"text_column": "2", "label_column": "1", "header": False},
        expect={"header": False, "columns": {"text": 2, "label": 1}, "rows": 40},
    ),
    Case(
        "headerless-detected-and-inferred",
        "noheader.csv",
        HEADERLESS.encode(),
        expect={"header": False, "columns": {"text": 2, "label": 1}, "rows": 40},
        warning="noheader.csv: no header row; using column 1 as the label and column 2 as the "
        "text (set ingest.label_column and ingest.text_column to choose)",
        check=spam_count,
    ),
    Case(
        "headerless-text-first",
        "noheader.csv",
        delimited([[t, label] for label, t in P]).encode(),
        expect={"header": False, "columns": {"text": 1, "label": 2}, "rows": 40},
        warning="using column 2 as the label and column 1 as the text",
    ),
    Case(
        "headerless-wide-needs-positions",
        "wide.csv",
        delimited([[i, label, t, "2024-01-01"] for i, (label, t) in enumerate(P)]).encode(),
        error="wide.csv: no header row (first row: '0', 'ham', 'see you for lunch at home later'"
        ", '2024-01-01'), so the columns must be given by position (1-based); "
        "e.g. dvc exp run -S settings.yaml:ingest.label_column=2 "
        "-S settings.yaml:ingest.text_column=3",
    ),
    Case(
        "headerless-wide-with-positions",
        "wide.csv",
        delimited([[i, label, t, "2024-01-01"] for i, (label, t) in enumerate(P)]).encode(),
        params={"label_column": 2, "text_column": 3},
        expect={"header": False, "columns": {"text": 3, "label": 2}, "rows": 40},
    ),
    Case(
        "header-detected-with-positions",
        "export.csv",
        delimited([["label", "text"], *labelled()]).encode(),
        params={"label_column": 1, "text_column": 2},
        expect={"header": True, "columns": COLUMNS, "rows_read": 40},
    ),
    Case(
        "header-true-on-a-headerless-file",
        "noheader.csv",
        HEADERLESS.encode(),
        params={"header": True},
        error="noheader.csv: column(s) not found: ingest.text_column = 'text', "
        "ingest.label_column = 'label'; columns found: 'ham', 'Huh, see you for lunch at home",
    ),
    Case(
        "header-false-on-a-file-with-a-header",
        "export.csv",
        delimited([["label", "text"], *labelled()]).encode(),
        params={"header": False, "label_column": 1, "text_column": 2},
        error="export.csv: line 1: 1 row(s) with a label that maps to neither class, 1 distinct: "
        "'label' (line 1)",
    ),
    Case(
        "position-past-the-last-column",
        "noheader.csv",
        HEADERLESS.encode(),
        params={"text_column": 3, "label_column": 1},
        error="noheader.csv: ingest.text_column = 3: the first row has only 2 column(s)",
    ),
    # -------------------------------------------------------------- column names
    Case(
        "class-message-spill-over",
        "sms.csv",
        (
            "class,message,,,\n"
            + "".join(f'{label},"{t}",,,\n' for label, t in P[:-1])
            + "spam,Costs 1.50 per msg, reply STOP, to end,,\n"
        ).encode(),
        expect={"format": "csv", "columns": {"text": "message", "label": "class"}, "rows": 40},
        warning="using 'message' as the text and 'class' as the label",
        check=texts_hold("Costs 1.50 per msg, reply STOP, to end", 1),
    ),
    Case(
        "youtube-content-class",
        "Youtube01.csv",
        delimited(
            [["COMMENT_ID", "AUTHOR", "DATE", "CONTENT", "CLASS"]]
            + [
                [f"c{i}", "someone", "2014-01-19", t, int(label == "spam")]
                for i, (label, t) in enumerate(P)
            ]
        ).encode(),
        expect={"columns": {"text": "CONTENT", "label": "CLASS"}, "rows": 40},
        warning="using 'CONTENT' as the text and 'CLASS' as the label",
        check=spam_count,
    ),
    Case(
        "sms-and-a-spam-column",
        "export.csv",
        delimited([["sms", "spam"]] + [[t, label == "spam"] for label, t in P]).encode(),
        expect={"header": True, "columns": {"text": "sms", "label": "spam"}, "rows": 40},
        warning="using 'sms' as the text and 'spam' as the label",
        check=spam_count,
    ),
    Case(
        "only-the-label-renamed",
        "export.csv",
        delimited([["text", "Target"]] + [[t, label] for label, t in P]).encode(),
        expect={"columns": {"text": "text", "label": "Target"}},
        warning="no column 'label'; using 'Target' as the label "
        "(set ingest.label_column to choose)",
    ),
    Case(
        "kaggle-v1-v2",
        "spam.csv",
        ("v1,v2,,,\n" + "".join(f'{label},"{t}",,,\n' for label, t in P)).encode(),
        expect={"format": "kaggle", "columns": {"text": "v2", "label": "v1"}, "header": True},
    ),
    Case(
        "ambiguous-text-column",
        "export.csv",
        delimited(
            [["id", "message", "body", "class"]] + [[1, t, t, label] for label, t in P]
        ).encode(),
        error="export.csv: ingest.text_column = 'text' is not a column and 2 could be it "
        "('message', 'body'); choose with e.g. dvc exp run "
        "-S settings.yaml:ingest.text_column=message -S settings.yaml:ingest.label_column=class",
    ),
    Case(
        "ambiguous-names-are-quoted-for-the-shell",
        "export.csv",
        delimited([["Message Body", "SMS", "Label"]] + [[t, t, label] for label, t in P]).encode(),
        error='choose with e.g. dvc exp run -S "settings.yaml:ingest.text_column=Message Body" '
        "-S settings.yaml:ingest.label_column=Label",
    ),
    Case(
        "parquet-well-known-names",
        "export.parquet",
        pd.DataFrame(
            {"msg": [t for _, t in P], "y": [int(lab == "spam") for lab, _ in P]}
        ).to_parquet(index=False),
        expect={"format": "parquet", "columns": {"text": "msg", "label": "y"}, "header": None},
        warning="using 'msg' as the text and 'y' as the label",
    ),
    Case(
        "jsonl-has-no-positions",
        "export.jsonl",
        "".join(json.dumps({"text": t, "label": lab}) + "\n" for lab, t in P).encode(),
        params={"text_column": 1},
        error="ingest.text_column = 1: JSON Lines columns have names, not positions",
    ),
    # --------------------------------------------------------------- spreadsheets
    Case(
        "xlsx-first-sheet-is-notes",
        "book.xlsx",
        xlsx({"About": [["Exported from the CRM"]], "Messages": [["label", "text"], *labelled()]}),
        error="book.xlsx (sheet 'About'): column(s) not found: ingest.text_column = 'text', "
        "ingest.label_column = 'label'; columns found: 'Exported from the CRM'; "
        "the workbook has other sheets: 'Messages' (set ingest.sheet)",
    ),
    Case(
        "xlsx-sheet-by-name",
        "book.xlsx",
        xlsx({"About": [["Exported"]], "Messages": [["label", "text"], *labelled(1, 0)]}),
        params={"sheet": "Messages"},
        expect={"format": "xlsx", "sheet": "Messages", "header": True, "encoding": None},
        check=spam_count,
    ),
    Case(
        "xlsx-sheet-by-index-with-numbers",
        "book.xlsx",
        xlsx({"About": [["x"]], "Messages": [["Category", "Message"], *labelled(), ["ham", 12]]}),
        params={"sheet": 2},
        expect={"sheet": "Messages", "columns": {"text": "Message", "label": "Category"}},
        warning="using 'Message' as the text and 'Category' as the label",
        check=texts_hold("12", 1),
    ),
    Case(
        "xlsx-sheet-misspelt",
        "book.xlsx",
        xlsx({"About": [["x"]], "Messages": [["label", "text"]]}),
        params={"sheet": "Mesages"},
        error="book.xlsx: ingest.sheet = 'Mesages' is not a sheet (did you mean 'Messages'?); "
        "its sheets: 'About', 'Messages'",
    ),
    Case(
        "xlsx-sheet-past-the-last",
        "book.xlsx",
        xlsx({"About": [["x"]], "Messages": [["label", "text"]]}),
        params={"sheet": 3},
        error="book.xlsx: ingest.sheet = 3: the workbook has 2 sheet(s): 'About', 'Messages'",
    ),
    Case(
        "xlsx-headerless",
        "noheader.xlsx",
        xlsx({"Sheet": labelled()}),
        expect={"header": False, "columns": {"text": 2, "label": 1}, "sheet": "Sheet"},
        warning="noheader.xlsx (sheet 'Sheet'): no header row; using column 1 as the label",
    ),
    Case(
        "ods",
        "book.ods",
        ods([["label", "text"], *labelled(1, 0)]),
        expect={"format": "ods", "sheet": "Sheet1", "rows": 40},
        check=spam_count,
    ),
    Case(
        "xls-found-by-content-whatever-its-name",
        "export.csv",
        xls({"About": [["x"]], "Messages": [["Category", "Message"], *labelled(1, 0)]}),
        params={"sheet": "Messages"},
        expect={
            "format": "xls",
            "sheet": "Messages",
            "columns": {"text": "Message", "label": "Category"},
        },
        warning="export.csv (sheet 'Messages'): no column 'text' or 'label'",
        check=spam_count,
    ),
    Case(
        "sheet-on-a-csv",
        "export.csv",
        delimited([["label", "text"], *labelled()]).encode(),
        params={"sheet": "Messages"},
        error="export.csv: ingest.sheet = 'Messages' is set but the source is not a spreadsheet",
    ),
    # ----------------------------------------------------------------- not a table
    Case(
        "html-page-named-csv",
        "sms_spam.csv",
        (
            "<!DOCTYPE html>\n<html lang='en'><head><title>sms_spam.csv at main</title></head>"
            "<body>" + '<div class="blob">label,text</div>' * 5000 + "</body></html>\n"
        ).encode(),
        error="sms_spam.csv: looks like an HTML page, not a table (it starts with "
        "'<!doctype html>'); expected labelled messages as CSV/TSV, JSON Lines, Parquet or a "
        "spreadsheet: if it was saved from a web page, download the raw file instead",
    ),
    Case(
        "json-array-named-jsonl",
        "export.jsonl",
        json.dumps([{"text": t, "label": lab} for lab, t in P], indent=1).encode(),
        error="export.jsonl: is one JSON document (an array), not JSON Lines (one object per "
        "line); convert it, e.g. jq -c '.[]' FILE > FILE.jsonl",
    ),
    Case(
        "json-object-over-lines",
        "export.json",
        json.dumps({"data": [{"text": "a", "label": "ham"}]}, indent=2).encode(),
        error="export.json: is one JSON document (an object over several lines), not JSON Lines",
    ),
    Case(
        "pdf-named-csv",
        "report.csv",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n",
        error="report.csv: looks like a PDF document, not a table; expected labelled messages "
        "as CSV/TSV, JSON Lines, Parquet or a spreadsheet (export the table it holds as CSV",
    ),
    Case(
        "word-document",
        "messages.docx",
        docx(),
        error="messages.docx: looks like an office document that is not a spreadsheet",
    ),
    Case(
        "unclosed-quote",
        "broken.csv",
        ('label,text\nham,"fine"\nspam,"never closed\n' + "ham,more text\n" * 20000).encode(),
        error="broken.csv: line 3: a field that starts here runs on past line",
    ),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return previous_run(tmp_path, monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layout_case(case: Case, workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    check_case(case, workdir, caplog)


def test_the_default_source_reports_its_layout(workdir: Path) -> None:
    """The bundled UCI file: tab, no header, label in column 1 and text in column 2."""
    report = json.loads((workdir / "data/report.json").read_text())
    assert (report["format"], report["delimiter"], report["header"], report["sheet"]) == (
        "uci",
        "\t",
        False,
        None,
    )
    assert report["columns"] == {"text": 2, "label": 1}


def test_xlsx_is_bounded_once_unpacked(workdir: Path) -> None:
    data = xlsx({"Messages": [["label", "text"], *labelled()] * 20})
    (workdir / "book.xlsx").write_bytes(data)
    proc = run_script(workdir, "book.xlsx", max_bytes=len(data) + 1)
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "ingest: error: book.xlsx: once decompressed, "
    ) and proc.stderr.rstrip().endswith(
        f"is larger than ingest.max_bytes = {len(data) + 1}; "
        "raise ingest.max_bytes or use a smaller file"
    )


@pytest.mark.parametrize(
    ("name", "content", "overrides", "line"),
    [
        (
            "crm.csv",
            SEMICOLON_EXPORT,
            {},
            "ingest: crm.csv: 40 rows read (csv, delimiter ';', header row, text column "
            "'message_body', label column 'is_spam', utf-8); dropped none; train 32, test 8",
        ),
        (
            "noheader.csv",
            HEADERLESS,
            {"text_column": 2, "label_column": 1},
            "ingest: noheader.csv: 40 rows read (csv, delimiter ',', no header row, text column "
            "2, label column 1, utf-8); dropped none; train 32, test 8",
        ),
    ],
)
def test_the_log_line_says_how_the_file_was_read(
    workdir: Path, name: str, content: str, overrides: dict[str, Any], line: str
) -> None:
    (workdir / name).write_text(content, encoding="utf-8")
    proc = run_script(workdir, name, **overrides)
    assert proc.returncode == 0, proc.stderr
    assert line in proc.stderr.splitlines()
