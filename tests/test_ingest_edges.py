"""Ingest's edges (issue 28): an over-long row is a row problem, not a file refusal; byte offsets
and column names are right with a byte-order mark; a markup or JSON document is named as such
before any label check; an error line quotes at most ~120 characters of the input."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from ingest_support import Case, check_case, messages, previous_run, run_script
from sentinelle.data import tables

PAIRS = messages(48, 30)
ROWS = [f"{label},{text}" for label, text in PAIRS]
EXPECTED = "expected labelled messages as CSV/TSV, JSON Lines, Parquet or a spreadsheet"
ACCEPTED = (
    "accepted (case-insensitive): ingest.spam_labels ['spam', '1', 'true'], "
    "ingest.ham_labels ['ham', '0', 'false']; or set ingest.on_unknown_label: drop"
)


def thousand_rows_one_long() -> bytes:
    """1,000 rows (the messages above, repeated) and at line 501 a 260,000-character text."""
    rows = ["label,text", *itertools.islice(itertools.cycle(ROWS), 1000)]
    rows[500] = "ham," + "x" * 260_000
    return ("\n".join(rows) + "\n").encode()


def long_quoted_letter() -> bytes:
    """A quoted text of 8,000 lines (214,889 characters), closed as it should be."""
    letter = "\n".join(f"line {i} of a long letter" for i in range(8000))
    return ("\n".join(["label,text", *ROWS[:39], f'ham,"{letter}"', *ROWS[39:]]) + "\n").encode()


BOM_LATIN1 = b"\xef\xbb\xbf" + (
    "\n".join(["label,text", *ROWS]).replace("lunch at home", "lunch at the caf\xe9") + "\n"
).encode("latin-1")
BAD_BYTE = BOM_LATIN1.index(b"\xe9")  # 46: counted from the file's first byte, BOM included

PAGE = (
    "<!DOCTYPE html>\n<html lang='en'>\n<head><title>SMS</title></head>\n<body>\n"
    + "".join(f"<p>spam,message {i}</p>\n" for i in range(1100))
    + "</body></html>\n"
)
COMMENTED_PAGE = (
    "<!-- saved from url=(0041)https://example.org/sms -->\n<html>\n<div>\n"
    + "".join(f"<p>spam,message {i}</p>\n" for i in range(1100))
    + "</div></html>\n"
)
TABLE = (
    "<table>\n"
    + "".join(f"<tr><td>ham</td><td>message {i}</td></tr>\n" for i in range(1100))
    + "</table>\n"
)
XML = "".join(f"<m label='ham'>message {i}</m>\n" for i in range(100))
ARRAY = json.dumps([{"label": label, "text": text} for label, text in PAIRS], indent=1)

CASES = [
    Case(
        "long-row-dropped",
        "long.csv",
        thousand_rows_one_long(),
        params={"on_too_long": "drop"},
        expect={"rows_read": 1000, "dropped.too_long": 1, "dropped.exact_duplicate": 921},
    ),
    Case(
        "long-row-fails",
        "long.csv",
        thousand_rows_one_long(),
        params={"on_too_long": "fail"},
        error="long.csv: line 501: 1 text(s) longer than ingest.max_chars = 5000 characters "
        "(longest 260000) (line 501); set ingest.on_too_long: drop to skip such rows",
    ),
    Case(
        "long-quoted-text-is-a-row",
        "letter.csv",
        long_quoted_letter(),
        params={"on_too_long": "drop"},
        expect={"rows_read": 79, "dropped.too_long": 1, "rows": 78},
    ),
    Case(
        "long-quoted-text-fails-as-a-row",
        "letter.csv",
        long_quoted_letter(),
        params={"on_too_long": "fail"},
        error="letter.csv: line 41: 1 text(s) longer than ingest.max_chars = 5000 characters "
        "(longest 214889) (line 41); set ingest.on_too_long: drop to skip such rows",
    ),
    Case(
        "unclosed-quote-where-it-is",
        "broken.csv",
        ('label,text\nham,"fine"\nspam,"never closed\n' + "ham,more text\n" * 20000).encode(),
        error="broken.csv: line 3: a field that starts here runs on past line 20003 "
        "(280013 characters, its lines like rows): a quote '\"' that is never closed; close "
        'it, or write a quote inside a quoted field as ""',
    ),
    Case(
        "bom-latin1-detected",
        "bom.csv",
        BOM_LATIN1,
        error=f"bom.csv: line 2: has a UTF-8 byte-order mark but is not valid UTF-8 (byte 0xe9 "
        f"at byte offset {BAD_BYTE}); set ingest.encoding to the file's encoding, e.g. cp1252 "
        "or latin-1 (the mark is skipped)",
    ),
    Case(
        "bom-latin1-as-latin1",
        "bom.csv",
        BOM_LATIN1,
        params={"encoding": "latin-1"},
        expect={
            "rows_read": 78,
            "encoding": "latin-1",
            "columns": {"text": "text", "label": "label"},
        },
    ),
    Case(
        "bom-latin1-as-cp1252",
        "bom.csv",
        BOM_LATIN1,
        params={"encoding": "cp1252"},
        expect={
            "rows_read": 78,
            "encoding": "cp1252",
            "columns": {"text": "text", "label": "label"},
        },
    ),
    Case(
        "bom-latin1-as-ascii",
        "bom.csv",
        BOM_LATIN1,
        params={"encoding": "ascii"},
        error=f"bom.csv: line 2: not valid ascii (byte 0xe9 at byte offset {BAD_BYTE}); set "
        "ingest.encoding to the file's encoding, or null to detect",
    ),
    Case(
        "html-page",
        "page.csv",
        PAGE.encode(),
        error="page.csv: looks like an HTML page, not a table (it starts with '<!doctype html>'); "
        f"{EXPECTED}: if it was saved from a web page, download the raw file instead",
    ),
    Case(
        "html-page-after-a-comment",
        "saved.csv",
        COMMENTED_PAGE.encode(),
        error="saved.csv: looks like an HTML page, not a table (it starts with '<!-- saved from "
        f"url=(0041)https://exampl'); {EXPECTED}: if it was saved from a web page, download "
        "the raw file instead",
    ),
    Case(
        "html-table",
        "table.csv",
        TABLE.encode(),
        params={"format": "csv", "on_unknown_label": "drop"},
        error=f"table.csv: looks like an HTML page, not a table (it starts with '<table>'); "
        f"{EXPECTED}: if it was saved from a web page, download the raw file instead",
    ),
    Case(
        "xml-declared",
        "messages.csv",
        f'<?xml version="1.0"?>\n<messages>\n{XML}</messages>\n'.encode(),
        params={"format": "csv"},
        error="messages.csv: looks like an XML document, not a table (it starts with "
        f"'<?xml version=\"1.0\"?>'); {EXPECTED}: export the messages from it as CSV or JSON "
        "Lines",
    ),
    Case(
        "xml-undeclared",
        "feed.tsv",
        f"<messages>\n{XML}</messages>\n".encode(),
        error="feed.tsv: looks like an XML document, not a table (it starts with '<messages>'); "
        f"{EXPECTED}: export the messages from it as CSV or JSON Lines",
    ),
    Case(
        "json-array-as-csv",
        "export.csv",
        ARRAY.encode(),
        params={"format": "csv"},
        error="export.csv: is one JSON document (an array), not JSON Lines (one object per "
        "line); convert it, e.g. jq -c '.[]' FILE > FILE.jsonl",
    ),
    Case(
        "broken-json-as-csv",
        "cut.csv",
        ARRAY[: len(ARRAY) // 2].encode(),
        params={"format": "csv"},
        error=f"cut.csv: looks like a JSON document (not valid JSON at line 168), not a table; "
        f"{EXPECTED}",
    ),
    Case(
        "huge-label",
        "labels.csv",
        (
            "\n".join(["label,text", *ROWS, "<div class='" + "a" * 5000 + "'>,hello there"]) + "\n"
        ).encode(),
        error="labels.csv: line 80: 1 row(s) with a label that maps to neither class, 1 "
        "distinct: \"<div class='aaaaaaaaaaaaaaaa… (5014 characters) (line 80); " + ACCEPTED,
    ),
    Case(
        "one-line-of-columns",
        "wide.csv",
        ("label,text," + ",".join(f"word{i}" for i in range(400_000)) + "\n").encode(),
        error="wide.csv: no messages found (columns found: 'label', 'text', 'word0', 'word1', "
        "'word2', 'word3', 'word4', 'word5', 'word6', 'word7', 'word8', 'word9', 'word10', "
        "'word11', ... (399988 more))",
    ),
    Case(
        "one-line-of-3-mb",
        "blob.csv",
        b"x" * 3_000_000,
        error="blob.csv: column(s) not found: ingest.text_column = 'text', ingest.label_column "
        f"= 'label'; columns found: '{'x' * 118}… (3000000 characters)",
    ),
    Case(
        "one-headerless-line-of-3-mb",
        "blob.tsv",
        ("junk\t" + "word, " * 500_000).encode(),
        params={"header": False, "text_column": "text", "label_column": "label"},
        error="blob.tsv: no header row (first row: 'junk', 'word, word, word, word, word, word, "
        "word, word, word, word, word, word, word, word, word, word, word, word, wo… (3000000 "
        "characters)), so the columns must be given by position (1-based); e.g. dvc exp run "
        "-S settings.yaml:ingest.label_column=1 -S settings.yaml:ingest.text_column=2",
    ),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return previous_run(tmp_path, monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_edge_case(case: Case, workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    check_case(case, workdir, caplog)


def quoted(line: str) -> list[str]:
    """The input an error line quotes: each '...' or "..." in it."""
    return [m.group(0) for m in re.finditer(r"'[^']*'|\"[^\"]*\"", line)]


@pytest.mark.parametrize(
    ("name", "content", "overrides"),
    [
        ("long.csv", thousand_rows_one_long(), {"on_too_long": "fail"}),
        ("bom.csv", BOM_LATIN1, {}),
        ("page.csv", PAGE.encode(), {"format": "csv"}),
        ("blob.csv", b"x" * 3_000_000, {}),
        ("wide.csv", ("label,text," + ",x" * 400_000 + "\n").encode(), {}),
    ],
)
def test_the_stage_script_says_it_in_one_short_line(
    workdir: Path, name: str, content: bytes, overrides: dict
) -> None:
    (workdir / name).write_bytes(content)
    proc = run_script(workdir, name, **overrides)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"ingest: error: {name}: ")
    assert len(line) < 400 and sum(map(len, quoted(line))) <= 240, line


def test_the_byte_offset_points_at_the_bad_byte() -> None:
    assert BOM_LATIN1[BAD_BYTE] == 0xE9 and BAD_BYTE == 46


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        ("label", 120, "'label'"),
        ("x" * 500, 20, "'xxxxxxxxxxxxxxxxxx… (500 characters)"),
        (12.0, 120, "12.0"),
    ],
)
def test_clip(value: object, limit: int, shown: str) -> None:
    assert tables.clip(value, limit) == shown
