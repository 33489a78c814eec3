"""A corpus of malformed and awkward input files, each ingested by the real stage code.

Every case either ingests with the expected counts or fails with the expected
one-line message; either way, the outputs of the previous (good) run must be
byte-identical when a case fails.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ingest_support import (
    Case,
    check_case,
    messages,
    output_hashes,
    previous_run,
    run_script,
    uci,
)

P = messages(30, 10)  # 40 distinct rows: 30 ham, 10 spam


def csv_bytes(
    header: list[str], rows: list[list[Any]], encoding: str = "utf-8", **kw: Any
) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, **kw)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


def with_rows(
    pairs: list[tuple[str, str]], replace: dict[int, tuple[str, str]]
) -> list[tuple[str, str]]:
    """``pairs`` with the (0-based) rows in ``replace`` swapped for other (label, text)."""
    return [replace.get(i, pair) for i, pair in enumerate(pairs)]


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def kaggle_latin1() -> bytes:
    lines = ["v1,v2,Unnamed: 2,Unnamed: 3,Unnamed: 4"]
    lines += [f'{label},"{text}",,,' for label, text in P[:-1]]
    # A spill-over row: the text's unquoted commas pushed parts into the extra columns.
    lines.append("spam,Costs \xa31.50 per msg, reply STOP, to end,")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


DUPS = [*P, P[0], P[1], P[2], P[31], P[31], ("spam", P[3][1]), ("ham", P[32][1]), ("ham", P[32][1])]


def texts(workdir: Path) -> list[str]:
    return [
        t
        for split in ("train", "test")
        for t in pd.read_parquet(workdir / f"data/raw/{split}.parquet")["text"]
    ]


CASES = [
    Case(
        "wrong-delimiter",
        "semicolons.csv",
        ("label;text\n" + "".join(f"{lab};{t}\n" for lab, t in P)).encode(),
        params={"delimiter": ","},
        error="semicolons.csv: column(s) not found: ingest.text_column = 'text', "
        "ingest.label_column = 'label'; columns found: 'label;text' "
        "(the header looks ';'-separated: set ingest.delimiter: auto)",
    ),
    Case(
        "missing-column",
        "export.csv",
        csv_bytes(["label", "note"], [list(r) for r in P]),
        error="export.csv: column(s) not found: ingest.text_column = 'text'; "
        "columns found: 'label', 'note'",
    ),
    Case(
        "unknown-labels",
        "labels.tsv",
        uci(
            with_rows(P, {2: ("spma", "x one"), 6: ("junk", "x two"), 8: ("spma", "x three")})
        ).encode(),
        error="labels.tsv: line 3: 3 row(s) with a label that maps to neither class, 2 distinct: "
        "'spma' (lines 3, 9); 'junk' (line 7); accepted (case-insensitive): "
        "ingest.spam_labels ['spam', '1', 'true'], ingest.ham_labels ['ham', '0', 'false']",
    ),
    Case(
        "unknown-labels-dropped",
        "labels.tsv",
        uci(
            with_rows(P, {2: ("spma", "x one"), 6: ("junk", "x two"), 8: ("spma", "x three")})
        ).encode(),
        params={"on_unknown_label": "drop"},
        expect={"rows_read": 40, "dropped.unknown_label": 3, "rows": 37},
    ),
    Case(
        "only-one-class",
        "ham.tsv",
        uci(messages(40, 0)).encode(),
        error="ham.tsv: only one class after cleaning (ham 40, spam 0); the stratified split with "
        "ingest.test_size = 0.2 needs at least 3 of each class",
    ),
    Case("empty-file", "empty.csv", b"", error="empty.csv: the file is empty"),
    Case("blank-lines-only", "blank.tsv", b"\n \r\n\t\n", error="blank.tsv: the file is empty"),
    Case(
        "header-only",
        "header.csv",
        b"label,text\r\n",
        error="header.csv: no messages found (columns found: 'label', 'text')",
    ),
    Case(
        "binary-garbage",
        "data.tsv",
        random.Random(7).randbytes(4096),
        error="data.tsv: looks like a binary file, not text",
    ),
    Case(
        "bad-utf8-explicit",
        "bad.tsv",
        uci(P[:4]).encode() + b"ham\tcaf\xff bar\n" + uci(P[4:]).encode(),
        params={"encoding": "utf-8"},
        error="bad.tsv: line 5: not valid utf-8 (byte 0xff at byte offset 153); set "
        "ingest.encoding",
    ),
    Case(
        "latin1-detected",
        "latin1.tsv",
        uci(with_rows(P, {5: ("ham", "that costs \xa35, fine")})).encode("latin-1"),
        expect={"encoding": "cp1252", "format": "uci", "rows": 40},
        check=lambda w: "that costs £5, fine" in texts(w) or pytest.fail("£ not decoded"),
    ),
    Case(
        "explicit-encoding-wins",
        "latin1.tsv",
        uci(with_rows(P, {5: ("ham", "na\xefve caf\xe9")})).encode("latin-1"),
        params={"encoding": "latin-1"},
        expect={"encoding": "latin-1", "rows": 40},
    ),
    Case(
        "utf8-bom-csv",
        "bom.csv",
        b"\xef\xbb\xbf" + csv_bytes(["label", "text"], [list(r) for r in P]),
        expect={"encoding": "utf-8-sig", "format": "csv", "rows": 40},
    ),
    Case(
        "utf16-bom-tsv",
        "utf16.tsv",
        uci(P).encode("utf-16"),
        expect={"encoding": "utf-16", "format": "uci", "rows": 40},
    ),
    Case(
        "crlf",
        "crlf.tsv",
        uci(P, newline="\r\n").encode(),
        expect={"rows": 40},
        check=lambda w: all("\r" not in t for t in texts(w)) or pytest.fail("\\r left in texts"),
    ),
    Case(
        "quoted-newlines",
        "multi.csv",
        csv_bytes(
            ["text", "label"],
            [["line one\nline two, still the same message", "ham"]]
            + [[t, lab] for lab, t in P[1:]],
        ),
        expect={"rows": 40, "format": "csv"},
        check=lambda w: (
            "line one\nline two, still the same message" in texts(w) or pytest.fail("lost newline")
        ),
    ),
    Case(
        "quoted-newlines-row-numbers",
        "multi.csv",
        csv_bytes(
            ["text", "label"], [["a\nb\nc", "ham"], ["next", "maybe"]] + [[t, lab] for lab, t in P]
        ),
        error="multi.csv: line 5: 1 row(s) with a label that maps to neither class, 1 distinct: "
        "'maybe' (line 5)",
    ),
    Case(
        "nul-bytes-dropped",
        "nul.tsv",
        uci(with_rows(P, {3: ("ham", "bad\x00byte")})).encode(),
        expect={"dropped.nul_bytes": 1, "rows": 39},
    ),
    Case(
        "nul-bytes-fatal",
        "nul.tsv",
        uci(with_rows(P, {3: ("ham", "bad\x00byte")})).encode(),
        params={"on_nul": "fail"},
        error="nul.tsv: line 4: 1 text(s) holding a NUL byte (line 4); "
        "set ingest.on_nul: drop to skip such rows",
    ),
    Case(
        "huge-line-dropped",
        "huge.tsv",
        uci(with_rows(P, {0: ("ham", "la " * 70_000)})).encode(),
        expect={
            "dropped.too_long": 1,
            "rows": 39,
            "length_chars.max": max(len(t) for _, t in P[1:]),
        },
    ),
    Case(
        "huge-line-fatal",
        "huge.tsv",
        uci(with_rows(P, {0: ("ham", "la " * 70_000)})).encode(),
        params={"on_too_long": "fail"},
        error="huge.tsv: line 1: 1 text(s) longer than ingest.max_chars = 5000 characters "
        "(longest 210000) (line 1)",
    ),
    Case(
        "over-max-bytes",
        "big.tsv",
        uci(P).encode(),
        params={"max_bytes": 1000},
        error=f"big.tsv: {len(uci(P).encode())} bytes is larger than ingest.max_bytes = 1000; "
        "raise ingest.max_bytes",
    ),
    Case(
        "zip-two-members",
        "two.zip",
        zip_bytes({"a.tsv": uci(P[:20]).encode(), "b.tsv": uci(P).encode()}),
        error="two.zip: the zip holds 2 files (a.tsv, b.tsv); set ingest.member to one of them",
    ),
    Case(
        "zip-member-chosen",
        "two.zip",
        zip_bytes({"a.tsv": uci(P[:20]).encode(), "dir/b.tsv": uci(P).encode()}),
        params={"member": "b.tsv"},
        expect={"compression": "zip", "member": "dir/b.tsv", "rows": 40},
    ),
    Case(
        "zip-member-absent",
        "two.zip",
        zip_bytes({"a.tsv": b"x", "b.tsv": b"y"}),
        params={"member": "c.tsv"},
        error="two.zip: ingest.member = 'c.tsv' is not in the zip; its files: a.tsv, b.tsv",
    ),
    Case(
        "zip-bomb-bounded",
        "bomb.zip",
        zip_bytes({"big.tsv": b"ham\t" + b"a" * 5_000_000}),
        params={"max_bytes": 1_000_000},
        error="bomb.zip!big.tsv: 5000004 bytes is larger than ingest.max_bytes = 1000000",
    ),
    Case(
        "uci-zip-without-extension",
        "smsspamcollection.zip",
        zip_bytes({"SMSSpamCollection": uci(P).encode(), "readme": b"x"}),
        params={"member": "SMSSpamCollection"},
        expect={"format": "uci", "rows": 40},
    ),
    Case(
        "gzip",
        "data.tsv.gz",
        gzip.compress(uci(P).encode(), mtime=0),
        expect={"compression": "gzip", "format": "uci", "rows": 40},
    ),
    Case(
        "gzip-corrupt",
        "data.tsv.gz",
        b"\x1f\x8b\x08\x00" + b"\x00" * 30,
        error="data.tsv.gz: not a valid gzip file",
    ),
    Case(
        "duplicates-and-conflicts-dropped",
        "dups.tsv",
        uci(DUPS).encode(),
        # 5 exact repeats; P[3] (ham + spam: 2 rows) and P[32] (spam + 2 ham: 3 rows) conflict.
        expect={
            "rows_read": 48,
            "duplicates": 5,
            "conflicts.texts": 2,
            "conflicts.rows_dropped": 5,
            "dropped.exact_duplicate": 5,
            "rows": 38,
        },
    ),
    Case(
        "conflicts-majority",
        "dups.tsv",
        uci(DUPS).encode(),
        params={"on_conflict": "majority"},
        # P[3] is 1 ham vs 1 spam (a tie: both dropped); P[32] is 2 ham vs 1 spam: ham wins,
        # and its second ham row is one more exact duplicate.
        expect={
            "conflicts.texts": 2,
            "conflicts.rows_dropped": 3,
            "duplicates": 6,
            "rows": 39,
            "splits.train.ham": 24,
            "splits.test.ham": 6,
        },
    ),
    Case(
        "conflicts-fatal",
        "dups.tsv",
        uci(DUPS).encode(),
        params={"on_conflict": "fail"},
        error=f"dups.tsv: line 4: 2 text(s) carry both labels, e.g. {P[3][1]!r} "
        "at lines 4 (ham), 46 (spam); set ingest.on_conflict: drop or majority",
    ),
    Case(
        "empty-texts-dropped",
        "blanks.tsv",
        uci(with_rows(P, {1: ("ham", "   "), 4: ("ham", "")})).encode(),
        expect={"dropped.empty_text": 2, "rows": 38},
    ),
    Case(
        "empty-texts-fatal",
        "blanks.tsv",
        uci(with_rows(P, {1: ("ham", "   "), 4: ("ham", "")})).encode(),
        params={"on_empty_text": "fail"},
        error="blanks.tsv: line 2: 2 empty or whitespace-only text(s) (lines 2, 5); "
        "set ingest.on_empty_text: drop",
    ),
    Case(
        "jsonl-custom-columns",
        "export.jsonl",
        "".join(
            json.dumps(
                {"id": i, "body": t, "is_spam": [0, 1, False, True][(lab == "spam") + 2 * (i % 2)]}
            )
            + "\n"
            for i, (lab, t) in enumerate(P)
        ).encode(),
        params={"text_column": "body", "label_column": "is_spam"},
        expect={"format": "jsonl", "rows": 40, "splits.test.spam": 2},
    ),
    Case(
        "jsonl-bad-line",
        "bad.jsonl",
        b'{"text": "a", "label": "ham"}\n\n{"text": "b", label: 1}\n',
        error="bad.jsonl: line 3: not valid JSON "
        "(Expecting property name enclosed in double quotes at column 15)",
    ),
    Case(
        "parquet-bool-labels",
        "export.parquet",
        parquet_bytes(
            pd.DataFrame({"message": [t for _, t in P], "spam": [lab == "spam" for lab, _ in P]})
        ),
        params={"text_column": "message", "label_column": "spam"},
        expect={"format": "parquet", "encoding": None, "rows": 40},
    ),
    Case(
        "parquet-missing-column",
        "export.parquet",
        parquet_bytes(pd.DataFrame({"note": ["a"], "score": [1]})),
        error="export.parquet: column(s) not found: ingest.text_column = 'text', "
        "ingest.label_column = 'label'; columns found: 'note', 'score'",
    ),
    Case(
        "too-few-rows",
        "few.tsv",
        uci(messages(8, 4)).encode(),
        error="few.tsv: only 12 usable message(s) after cleaning (ham 8, spam 4); "
        "ingest.min_rows = 20 are needed",
    ),
    Case(
        "class-too-small",
        "small.tsv",
        uci(messages(30, 2)).encode(),
        error="small.tsv: too few spam messages after cleaning (ham 30, spam 2); "
        "the stratified split with ingest.test_size = 0.2 needs at least 3 of each class",
    ),
    Case(
        "kaggle-latin1-spillover",
        "spam.csv",
        kaggle_latin1(),
        expect={"format": "kaggle", "encoding": "cp1252", "rows": 40},
        check=lambda w: (
            "Costs £1.50 per msg, reply STOP, to end" in texts(w)
            or pytest.fail("spill-over not joined")
        ),
    ),
    Case(
        "labels-case-and-space",
        "case.tsv",
        uci([(f" {lab.upper()} ", t) for lab, t in P]).encode(),
        expect={"rows": 40},
    ),
    Case("no-such-file", "absent.tsv", None, error="absent.tsv: no such file"),
    Case(
        "sha256-mismatch",
        "pinned.tsv",
        uci(P).encode(),
        params={"sha256": "0" * 64},
        error="pinned.tsv: sha256 is ",
    ),
    Case(
        "wrong-explicit-format",
        "export.csv",
        csv_bytes(["label", "text"], [list(r) for r in P]),
        params={"format": "uci"},
        error="export.csv: line 1: expected 'label<TAB>text' (UCI layout), "
        "found no tab: 'label,text'",
    ),
    Case(
        "member-without-zip",
        "ok.tsv",
        uci(P).encode(),
        params={"member": "x.tsv"},
        error="ok.tsv: ingest.member = 'x.tsv' is set but the source is not a zip; "
        "set ingest.member: null",
    ),
    Case(
        "bad-encoding-name",
        "ok.tsv",
        uci(P).encode(),
        params={"encoding": "klingon"},
        error="ingest.encoding = 'klingon' is not a known encoding",
    ),
]


def test_the_corpus_is_large_enough() -> None:
    assert len({c.name for c in CASES}) >= 20
    assert len(CASES) >= 40


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return previous_run(tmp_path, monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_case(case: Case, workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    check_case(case, workdir, caplog)


def test_a_failure_is_one_line_on_stderr_exit_2_and_keeps_outputs(workdir: Path) -> None:
    bad = workdir / "labels.tsv"
    bad.write_text(uci(with_rows(P, {2: ("spma", "x one")})), encoding="utf-8")
    before = output_hashes(workdir)
    proc = run_script(workdir, "labels.tsv")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "ingest: error: labels.tsv: line 3: 1 row(s) with a label that maps to neither class, "
        "1 distinct: "
        "'spma' (line 3); accepted (case-insensitive): ingest.spam_labels ['spam', '1', 'true'], "
        "ingest.ham_labels ['ham', '0', 'false']; or set ingest.on_unknown_label: drop"
    ]
    assert output_hashes(workdir) == before


def test_verbose_shows_the_traceback(workdir: Path) -> None:
    proc = run_script(workdir, "absent.tsv", "--verbose")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "UserError: absent.tsv: no such file" in proc.stderr


def test_script_run_is_reproducible_and_reports_the_encoding_warning(workdir: Path) -> None:
    (workdir / "latin1.tsv").write_bytes(
        uci(with_rows(P, {5: ("ham", "that costs \xa35")})).encode("latin-1")
    )
    first = run_script(workdir, "latin1.tsv")
    assert first.returncode == 0, first.stderr
    assert (
        "ingest: warning: latin1.tsv is not valid UTF-8 (line 6, byte 0xa3 at byte offset 201); "
        "decoded as cp1252. Set ingest.encoding to silence this or to choose another encoding"
    ) in first.stderr.splitlines()
    hashes = output_hashes(workdir)
    assert run_script(workdir, "latin1.tsv").returncode == 0
    assert output_hashes(workdir) == hashes
    metrics = json.loads((workdir / "dvclive/ingest/metrics.json").read_text())
    assert metrics["rows_read"] == 40 and metrics["train"]["spam"] + metrics["test"]["spam"] == 10
