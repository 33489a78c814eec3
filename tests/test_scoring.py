"""Batch scoring: the library call and the `sentinelle score` command, on a small real model."""

from __future__ import annotations

import csv
import fcntl
import io as _io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

import tiny_model
from helpers import ROOT, env
from sentinelle.batch.files import score_file
from sentinelle.errors import UserError
from sentinelle.modeling import inference
from sentinelle.modeling.fast.training import build_pipeline
from sentinelle.serving.scorer import Scorer
from sentinelle.text.normaliser import Normaliser

MESSAGES = [
    *tiny_model.SPAM,
    *tiny_model.HAM,
    "Call me when you're free, x",
    'He said "no, thanks"\tand left',
]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def scorer(model_path: Path) -> Scorer:
    return Scorer.load(model_path)


def cli(
    *args: str | Path, stdin: bytes | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[bytes]:
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, "-m", "sentinelle", "score", *map(str, args)],
        input=stdin,
        capture_output=True,
        env=e,
        cwd=cwd,
        timeout=300,
    )


def test_scorer_uses_the_training_normaliser_and_the_stored_threshold(
    scorer: Scorer, model_path: Path
) -> None:
    meta = json.loads(model_path.with_suffix(".json").read_text())
    raw = ["FREE prize: call 09061701461 or visit www.win.com", "see you at lunch"]
    expected = inference.spam_scores(
        scorer.model, Normaliser(**meta["params"]["preprocess"]).many(raw)
    )
    np.testing.assert_allclose(scorer.scores(raw), expected)
    assert scorer.threshold == tiny_model.THRESHOLD and scorer.version == meta["model_version"]
    scores = scorer.scores(MESSAGES)
    assert {is_spam for _, is_spam in scorer.predict(MESSAGES)} == {True, False}
    assert [is_spam for _, is_spam in scorer.predict(MESSAGES)] == [
        s >= tiny_model.THRESHOLD for s in scores
    ]
    assert scores[: len(tiny_model.SPAM)].min() > scores[len(tiny_model.SPAM) : -2].max()


def test_scorer_follows_the_preprocess_params_of_the_model(tmp_path: Path) -> None:
    stemmed = Scorer.load(tiny_model.make(tmp_path, stem=True))
    assert stemmed.normaliser("Winning prizes") == "win prize"


TRICKY = [
    "  tabs\tand\u00a0nbsp  and\u2003em  ",
    "x",
    "a b c",
    "ünïcödé wörds 日本語テキスト",
    "!!!",
    "a" * 300,
    "win " * 50,
]


@pytest.mark.parametrize("classifier", ["linear_svm", "logreg", "sgd", "complement_nb"])
def test_the_fast_classifier_path_gives_scikit_learns_exact_scores(classifier: str) -> None:
    import dataclasses

    from helpers import ROOT as root
    from sentinelle.params import load

    p = dataclasses.replace(load(root / "params.yaml").train, classifier=classifier)
    normalise = Normaliser()
    texts = MESSAGES * 3  # linear_svm calibrates on 5 folds
    model = build_pipeline(p, seed=1).fit(normalise.many(texts), (["spam"] * 6 + ["ham"] * 8) * 3)
    scorer = Scorer(model, {"threshold": 0.5, "model_version": "x", "params": {"preprocess": {}}})
    assert (scorer.classifier is not None) == (classifier == "linear_svm")
    probe = [*MESSAGES, *TRICKY, "win", "lunch"]
    np.testing.assert_array_equal(
        scorer.scores(probe), inference.spam_scores(model, normalise.many(probe))
    )
    for text in probe[:3]:  # one at a time, as the API scores
        assert scorer.scores([text])[0] == inference.spam_scores(model, [normalise(text)])[0]


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_delimited_files_keep_every_column_and_gain_the_scores(
    tmp_path: Path, scorer: Scorer, fmt: str
) -> None:
    delimiter = "," if fmt == "csv" else "\t"
    src, dest = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    write_csv(
        src,
        [["id", "text", "note"], *[[str(i), m, "multi\nline"] for i, m in enumerate(MESSAGES)]],
        delimiter,
    )
    report = score_file(src, dest, scorer=scorer)
    rows = list(csv.DictReader(dest.open(newline="", encoding="utf-8"), delimiter=delimiter))
    assert [r["text"] for r in rows] == MESSAGES and rows[0]["note"] == "multi\nline"
    assert list(rows[0]) == ["id", "text", "note", "spam_score", "is_spam", "model_version"]
    expected = scorer.predict(MESSAGES)
    assert [float(r["spam_score"]) for r in rows] == pytest.approx(
        [s for s, _ in expected], abs=1e-6
    )
    assert [r["is_spam"] for r in rows] == ["true" if spam else "false" for _, spam in expected]
    assert {r["model_version"] for r in rows} == {scorer.version}
    assert (report.rows_read, report.rows_scored, report.bad_rows) == (
        len(MESSAGES),
        len(MESSAGES),
        0,
    )
    assert report.spam == sum(spam for _, spam in expected)


def test_jsonl_and_plain_text_inputs(tmp_path: Path, scorer: Scorer) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "body": m}) + "\n" for i, m in enumerate(MESSAGES)),
        encoding="utf-8",
    )
    score_file(src, tmp_path / "out.jsonl", scorer=scorer, text_column="body")
    out = [
        json.loads(line)
        for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [o["id"] for o in out] == list(range(len(MESSAGES)))
    assert [(o["spam_score"], o["is_spam"]) for o in out] == [
        (round(s, 6), b) for s, b in scorer.predict(MESSAGES)
    ]

    plain = tmp_path / "in.txt"
    plain.write_text("\n".join(m.replace("\n", " ") for m in MESSAGES) + "\n", encoding="utf-8")
    score_file(plain, tmp_path / "plain.csv", scorer=scorer)
    rows = list(csv.DictReader((tmp_path / "plain.csv").open(newline="", encoding="utf-8")))
    assert [r["text"] for r in rows] == MESSAGES
    assert [r["is_spam"] == "true" for r in rows] == [b for _, b in scorer.predict(MESSAGES)]


def test_small_chunks_give_the_same_bytes_in_order(tmp_path: Path, scorer: Scorer) -> None:
    src = tmp_path / "in.csv"
    many = [f"{m} #{i}" for i in range(50) for m in MESSAGES]
    write_csv(src, [["text"], *[[m] for m in many]])
    score_file(src, tmp_path / "one.csv", scorer=scorer, chunk_size=1000)
    report = score_file(src, tmp_path / "small.csv", scorer=scorer, chunk_size=7)
    assert report.rows_scored == len(many)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "small.csv").read_bytes()


BAD_CSV = b'id,text\n1,hello there\n2\n3,"caf\xe9 \xff"\n4,\n5,WIN a FREE prize now\n6,a,b\n'


def test_bad_rows_are_skipped_and_reported_with_row_and_line(
    tmp_path: Path, scorer: Scorer
) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(BAD_CSV)
    report = score_file(src, tmp_path / "out.csv", scorer=scorer, on_error="skip")
    assert [(b.row, b.line) for b in report.bad] == [(2, 3), (3, 4), (4, 5), (6, 7)]
    assert "missing text column" in report.bad[0].reason and "undecodable" in report.bad[1].reason
    assert "empty text" in report.bad[2].reason and "wrong number of fields" in report.bad[3].reason
    ids = [r["id"] for r in csv.DictReader((tmp_path / "out.csv").open(newline=""))]
    assert ids == ["1", "5"] and (report.rows_read, report.rows_scored, report.bad_rows) == (
        6,
        2,
        4,
    )


def test_fail_stops_at_the_first_bad_row_and_leaves_the_output_untouched(
    tmp_path: Path, scorer: Scorer
) -> None:
    src, dest = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(BAD_CSV)
    dest.write_text("previous\n")
    with pytest.raises(UserError, match=r"in\.csv: row 2 \(line 3\): missing text column"):
        score_file(src, dest, scorer=scorer, chunk_size=1)
    assert dest.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_bad_jsonl_rows(tmp_path: Path, scorer: Scorer) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"text": "hi"}\n{"txt": "hi"}\n[1]\n{"text": 3}\n{broken\n\xff\xfe\n{"text": "ok"}\n'
    )
    report = score_file(src, tmp_path / "out.jsonl", scorer=scorer, on_error="skip")
    assert [b.row for b in report.bad] == [2, 3, 4, 5, 6]
    assert [json.loads(x)["text"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == [
        "hi",
        "ok",
    ]


def test_a_byte_order_mark_and_other_encodings(tmp_path: Path, scorer: Scorer) -> None:
    (tmp_path / "bom.csv").write_bytes("\ufefftext\nhello\n".encode())
    assert score_file(tmp_path / "bom.csv", tmp_path / "out.csv", scorer=scorer).rows_scored == 1
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    assert (
        score_file(
            tmp_path / "latin1.txt", tmp_path / "out.jsonl", scorer=scorer, encoding="latin-1"
        ).rows_scored
        == 1
    )
    assert json.loads((tmp_path / "out.jsonl").read_text())["text"] == "caf\xe9 au lait"
    with pytest.raises(UserError, match="unknown encoding 'klingon'"):
        score_file(tmp_path / "latin1.txt", None, scorer=scorer, encoding="klingon")


def test_unknown_column_and_suffix_are_one_line_errors(tmp_path: Path, scorer: Scorer) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, [["message"], ["hello"]])
    with pytest.raises(
        UserError,
        match=r"no column 'text' in the header \('message'\); choose one with --text-column",
    ):
        score_file(src, tmp_path / "out.csv", scorer=scorer)
    with pytest.raises(UserError, match=r"cannot tell the format from the suffix '\.xlsx'"):
        score_file(tmp_path / "in.xlsx", None, scorer=scorer)


def test_cli_reads_stdin_writes_stdout_and_is_quiet_when_piped(model_path: Path) -> None:
    proc = cli("-", "--model", model_path, stdin="\n".join(MESSAGES[:3]).encode() + b"\n")
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["text"] for o in out] == MESSAGES[:3] and all(o["is_spam"] for o in out)
    assert proc.stderr.decode().splitlines() == [
        f"sentinelle score: scored 3 of 3 rows (3 spam at threshold {tiny_model.THRESHOLD:g}, "
        f"operating point default, model {out[0]['model_version']})"
    ]


def test_cli_decides_at_a_named_operating_point(model_path: Path) -> None:
    scorer = Scorer.load(model_path)
    stdin = "\n".join(MESSAGES).encode() + b"\n"
    proc = cli("-", "--model", model_path, "--operating-point", "strict", stdin=stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    expected = [bool(s >= tiny_model.STRICT) for s in scorer.scores(MESSAGES)]
    assert [o["is_spam"] for o in out] == expected and sum(expected) < len(MESSAGES)
    assert f"at threshold {tiny_model.STRICT:g}, operating point strict," in proc.stderr.decode()
    proc = cli("-", "--model", model_path, "--operating-point", "loose", stdin=stdin)
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        "sentinelle score: error: unknown operating point 'loose'; allowed: default, strict"
    ]


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path: Path, model_path: Path) -> None:
    (tmp_path / "in.csv").write_bytes(BAD_CSV)
    proc = cli(tmp_path / "in.csv", "-o", tmp_path / "out.csv", "--model", model_path)
    assert proc.returncode == 2 and not (tmp_path / "out.csv").exists()
    assert proc.stderr.decode().strip().splitlines() == [
        f"sentinelle score: error: {tmp_path / 'in.csv'}: row 2 (line 3): missing text column: "
        "1 fields, the header has 2; use --on-error skip to leave such rows out"
    ]
    proc = cli(tmp_path / "in.csv", "--model", tmp_path / "absent.skops")
    assert proc.returncode == 2 and b"model metadata not found" in proc.stderr
    proc = cli(tmp_path / "in.csv", "--model", model_path, "--workers", "2")
    assert proc.returncode == 2
    assert proc.stderr.decode().splitlines() == [
        "sentinelle score: error: --workers sets the Dask workers of --scheduler local; "
        "without it, scoring runs in this process"
    ]


def test_cli_shows_a_progress_bar_on_a_terminal(tmp_path: Path, model_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(MESSAGES * 20) + "\n")
    leader, follower = pty.openpty()
    fcntl.ioctl(
        follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0)
    )  # a 100-column terminal
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentinelle",
            "score",
            str(src),
            "-o",
            str(tmp_path / "out.jsonl"),
            "--model",
            str(model_path),
            "--chunk-size",
            "10",
        ],
        stderr=follower,
        env=e,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    assert b"scoring:   0%|" in seen  # tqdm's bar, drawn on the terminal only


def test_score_file_accepts_text_streams_via_stdin_flag(
    tmp_path: Path, scorer: Scorer, monkeypatch
) -> None:
    """``"-"`` reads the process's stdin (what the CLI passes for a pipe)."""
    fake = _io.TextIOWrapper(_io.BytesIO(b"text\nhello\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    report = score_file("-", tmp_path / "out.csv", scorer=scorer, fmt="csv")
    assert report.rows_scored == 1 and (tmp_path / "out.csv").read_text().startswith(
        "text,spam_score,is_spam"
    )


def test_sentinelle_score_does_not_import_fastapi(model_path: Path) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['sentinelle', 'score', '-', '--model', {str(model_path)!r}]\n"
        "try:\n    runpy.run_module('sentinelle', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=b"win a prize\n",
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines()[-1] == "[]"
