"""The feedback store, `POST /feedback` on a real server, and `sentinelle feedback`."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tiny_model
from helpers import sh
from sentinelle import feedback_store
from sentinelle.cli import main
from sentinelle.serving import tokens
from test_api import serve, stop, wait_for


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_store_appends_whole_lines_and_stores_an_id_once(tmp_path: Path) -> None:
    path = tmp_path / "fb" / "feedback.jsonl"
    store = feedback_store.Store(path)
    first, stored = store.add(feedback_store.record("WIN a prize", "spam", "a1", "app"))
    assert stored and first == feedback_store.Record("WIN a prize", "spam", "a1", "app")
    again, stored = store.add(feedback_store.record("other text", "ham", "a1"))
    assert not stored and again == first  # the stored record, not the new one
    store.add(feedback_store.record("see you", "ham"))
    store.add(feedback_store.record("see you", "ham"))  # no id: nothing to deduplicate on
    unset = {"reporter": None, "score": None, "model_version": None}
    assert lines(path) == [
        {"id": "a1", "label": "spam", "source": "app", "text": "WIN a prize", **unset},
        {"id": None, "label": "ham", "source": None, "text": "see you", **unset},
        {"id": None, "label": "ham", "source": None, "text": "see you", **unset},
    ]
    # Another writer (a second store on the same file) sees the ids the first stored.
    other = feedback_store.Store(path)
    assert other.add(feedback_store.record("x", "spam", "a1"))[1] is False
    assert other.stats() == {
        "total": 3,
        "by_label": {"ham": 2, "spam": 1},
        "skipped": 0,
        "problems": [],
    }
    # Ids are each reporter's own: another reporter's "a1" neither blocks nor shows this one.
    mine, stored = other.add(feedback_store.record("mine", "ham", "a1", reporter="eve"))
    assert stored and mine.text == "mine" and lines(path)[-1]["reporter"] == "eve"
    assert store.add(feedback_store.record("again", "ham", "a1", reporter="eve")) == (mine, False)


def test_a_torn_last_line_is_ignored_then_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "feedback.jsonl"
    store = feedback_store.Store(path)
    store.add(feedback_store.record("free entry", "spam", "1"))
    with path.open("ab") as fh:
        fh.write(b'{"id": "2", "label": "sp')  # a write cut short by a crash
    with caplog.at_level(logging.WARNING, logger="sentinelle"):
        assert [r.id for r in feedback_store.read(path)] == ["1"]
    assert "line 2 skipped: incomplete (a write cut short)" in caplog.text
    feedback_store.Store(path).add(feedback_store.record("call me", "ham", "3"))
    assert [r["id"] for r in lines(path)] == ["1", "3"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not json\n", "not valid JSON: Expecting value"),
        (b'{"text": "a", "label": "maybe"}\n', "label 'maybe' is invalid"),
        (b'{"text": "", "label": "ham"}\n', "text '' is invalid"),
        (b'{"text": "a", "label": "ham", "when": 1}\n', "a record is an object"),
        (b'{"text": "a\\u0000b", "label": "ham"}\n', "must hold no NUL byte"),
        (b'{"text": "a\\ud800", "label": "ham"}\n', "only valid Unicode"),
        (b'{"text": "%s", "label": "ham"}\n' % (b"x" * 5001), "(5001 characters)"),
        (b'{"text": "a", "label": "ham", "id": "%s"}\n' % (b"i" * 201), "id 'iiii"),
        (b'{"text": "a", "label": "ham", "score": 1.5}\n', "score 1.5 is invalid"),
        (b"[" * 100_000 + b"\n", "not valid JSON"),
    ],
)
def test_a_bad_line_is_skipped_counted_and_described(
    tmp_path: Path, content: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "feedback.jsonl"
    good = b'{"text": "free cash", "label": "spam"}\n'
    path.write_bytes(good + content + good)
    parsed = feedback_store.scan(path.read_bytes(), str(path))
    assert [r.text for r in parsed.records] == ["free cash", "free cash"]
    assert parsed.skipped == 1 and parsed.problems[0].line == 2
    assert reason in parsed.problems[0].reason and len(parsed.problems[0].reason) <= 120
    with caplog.at_level(logging.WARNING, logger="sentinelle"):
        assert len(feedback_store.read(path)) == 2
    assert f"{path}: line 2 skipped: " in caplog.text
    store = feedback_store.Store(path)
    store.add(feedback_store.record("see you", "ham"))  # a bad line does not stop a writer
    assert store.stats()["skipped"] == 1 and store.stats()["total"] == 3
    assert store.stats()["problems"] == [{"line": 2, "reason": parsed.problems[0].reason}]


def test_the_one_validation_names_the_field() -> None:
    for args, kwargs, field in (
        (("a\0b", "spam"), {}, "text"),
        (("x" * (feedback_store.MAX_CHARS + 1), "spam"), {}, "text"),
        (("a", "junk"), {}, "label"),
        (("a", "spam", "i" * 201), {}, "id"),
        (("a", "spam"), {"reporter": "r\0"}, "reporter"),
    ):
        with pytest.raises(feedback_store.Invalid) as caught:
            feedback_store.record(*args, **kwargs)
        assert caught.value.field == field and str(caught.value).count("\n") == 0
    assert feedback_store.record("x" * feedback_store.MAX_CHARS, "ham").label == "ham"


# --------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


@pytest.fixture
def served(model_path: Path, tmp_path: Path) -> Iterator[tuple[str, Path, object, dict]]:
    """A server with --feedback and a token file; the headers of a feedback token."""
    store, file = tmp_path / "feedback.jsonl", tmp_path / "tokens.json"
    headers = {"Authorization": f"Bearer {tokens.add(file, 'tester', ('feedback',))[1]}"}
    proc, url = serve(
        model_path,
        tmp_path / "server.log",
        "--feedback",
        str(store),
        "--tokens",
        str(file),
        "--feedback-burst",
        "100000",
    )
    try:
        wait_for(f"{url}/readyz", proc, tmp_path / "server.log", 200)
        yield url, store, proc, headers
    finally:
        stop(proc)


def test_post_feedback_stores_validates_and_counts(served: tuple) -> None:
    url, store, _, headers = served
    with httpx.Client(base_url=url, timeout=30, headers=headers) as c:
        body = {"text": "Parcel held, pay 1.99 now", "label": "spam", "id": "r1", "source": "t"}
        first = c.post("/feedback", json=body)
        assert first.status_code == 201 and first.json() == {
            **body,
            "reporter": "tester",
            "score": first.json()["score"],
            "model_version": first.json()["model_version"],
        }
        assert 0 <= first.json()["score"] <= 1
        assert c.post("/feedback", json={**body, "label": "ham"}).status_code == 200
        assert c.post("/feedback", json={"text": "lunch?", "label": "ham"}).status_code == 201
        for bad, loc in (
            ({"text": "hi", "label": "maybe"}, ["body", "label"]),
            ({"label": "spam"}, ["body", "text"]),
            ({"text": " ", "label": "spam"}, ["body", "text"]),
            ({"text": "hi", "label": "spam", "extra": 1}, ["body", "extra"]),
            ({"text": "hi", "label": "spam", "id": ""}, ["body", "id"]),
        ):
            response = c.post("/feedback", json=bad)
            assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc
        assert c.get("/feedback/stats").json() == {
            "total": 2,
            "by_label": {"ham": 1, "spam": 1},
            "skipped": 0,
            "problems": [],
        }
    assert [r["id"] for r in lines(store)] == ["r1", None]


def test_without_feedback_file_there_is_no_feedback_endpoint(model_path: Path, tmp_path: Path):
    proc, url = serve(model_path, tmp_path / "server.log")
    try:
        wait_for(f"{url}/readyz", proc, tmp_path / "server.log", 200)
        assert httpx.post(f"{url}/feedback", json={"text": "a", "label": "spam"}).status_code == 404
    finally:
        stop(proc)


def test_a_server_killed_mid_write_leaves_a_parseable_file(served: tuple) -> None:
    url, store, proc, headers = served
    acknowledged: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=10, headers=headers) as c:
            for i in range(1000):
                rid = f"{k}-{i}"
                try:
                    r = c.post(
                        "/feedback", json={"text": f"msg {rid} " * 20, "label": "spam", "id": rid}
                    )
                except httpx.TransportError:
                    return
                if r.status_code == 201:
                    with lock:
                        acknowledged.append(rid)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while len(acknowledged) < 100:  # the server is busy writing
        threading.Event().wait(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    for t in threads:
        t.join()
    proc.wait()
    parsed = feedback_store.scan(store.read_bytes(), str(store))
    assert parsed.skipped <= 1  # at most the last line, torn by the kill
    if parsed.skipped:
        assert parsed.problems[0].reason.startswith("incomplete (a write cut short)")
        assert parsed.problems[0].line == len(parsed.records) + 1
    records = parsed.records
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) >= 100
    assert set(acknowledged) <= set(ids)  # every 201 was on disk


# ------------------------------------------------------------------------------ the CLI


def test_cli_add_import_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "feedback.jsonl"
    out = sh(
        "sentinelle",
        "feedback",
        "add",
        "--file",
        store,
        "--label",
        "spam",
        "--id",
        "x1",
        "--reporter",
        "ops",
        "Claim your parcel",
        cwd=tmp_path,
    )
    added = json.loads(out.stdout)
    assert (added["id"], added["reporter"], added["score"]) == ("x1", "ops", None)
    batch = tmp_path / "reports.csv"
    batch.write_text("id,text,label\nx1,dup,ham\nx2,see you,ham\n,free cash,1\n")
    proc = sh(
        "sentinelle",
        "feedback",
        "import",
        "--file",
        store,
        batch,
        "--source",
        "csv",
        "--reporter",
        "helpdesk",
        cwd=tmp_path,
    )
    # Ids are each reporter's own: helpdesk's x1 is not ops' x1.
    assert "stored 3 record(s)" in proc.stderr
    again = ("feedback", "add", "--file", store, "--label", "ham", "--id", "x2", "see you")
    proc = sh("sentinelle", *again, "--reporter", "helpdesk", cwd=tmp_path)
    assert "stored 0 record(s) in" in proc.stderr and "1 already stored" in proc.stderr
    assert [r.reporter for r in feedback_store.read(store)] == ["ops", *["helpdesk"] * 3]
    with store.open("ab") as fh:
        fh.write(b"junk, not a record\n")  # a bad line: counted, never fatal
    stats = sh("sentinelle", "feedback", "stats", "--file", store, cwd=tmp_path)
    assert json.loads(stats.stdout) == {
        "total": 4,
        "by_label": {"ham": 2, "spam": 2},
        "skipped": 1,
        "problems": [
            {"line": 5, "reason": "not valid JSON: Expecting value: line 1 column 1 (char 0)"}
        ],
    }
    assert "line 5 skipped: not valid JSON" in stats.stderr

    before = store.read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,ham\nwhat,perhaps\n")
    proc = sh(
        "sentinelle",
        "feedback",
        "import",
        "--file",
        store,
        bad,
        "--reporter",
        "x",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "row 2 (line 3): label 'perhaps' is not a label" in proc.stderr
    assert store.read_bytes() == before  # nothing of a bad file is stored
    for args, message in (
        (["add", "--label", "spam", "a\0b"], "TEXT: text is invalid"),
        (["add", "--label", "spam", "x" * 5001], "(5001 characters)"),
        (["add", "--label", "spam", "x", "--reporter", "Not A Name"], "--reporter 'Not A Name'"),
    ):
        if "--reporter" not in args:
            args += ["--reporter", "ops"]
        assert main(["feedback", *args[:1], "--file", str(store), *args[1:]]) == 2
        assert message in capsys.readouterr().err
    assert store.read_bytes() == before
