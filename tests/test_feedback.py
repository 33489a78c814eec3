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
from sentinelle import feedback
from sentinelle.errors import UserError
from test_api import serve, stop, wait_for


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_store_appends_whole_lines_and_stores_an_id_once(tmp_path: Path) -> None:
    path = tmp_path / "fb" / "feedback.jsonl"
    store = feedback.Store(path)
    first, stored = store.add(feedback.record("WIN a prize", "spam", "a1", "app"))
    assert stored and first == feedback.Record("WIN a prize", "spam", "a1", "app")
    again, stored = store.add(feedback.record("other text", "ham", "a1"))
    assert not stored and again == first  # the stored record, not the new one
    store.add(feedback.record("see you", "ham"))
    store.add(feedback.record("see you", "ham"))  # no id: nothing to deduplicate on
    unset = {"reporter": None, "score": None, "model_version": None}
    assert lines(path) == [
        {"id": "a1", "label": "spam", "source": "app", "text": "WIN a prize", **unset},
        {"id": None, "label": "ham", "source": None, "text": "see you", **unset},
        {"id": None, "label": "ham", "source": None, "text": "see you", **unset},
    ]
    # Another writer (a second store on the same file) sees the ids the first stored.
    other = feedback.Store(path)
    assert other.add(feedback.record("x", "spam", "a1"))[1] is False
    assert other.stats() == {"total": 3, "by_label": {"ham": 2, "spam": 1}}


def test_a_torn_last_line_is_ignored_then_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "feedback.jsonl"
    store = feedback.Store(path)
    store.add(feedback.record("free entry", "spam", "1"))
    with path.open("ab") as fh:
        fh.write(b'{"id": "2", "label": "sp')  # a write cut short by a crash
    with caplog.at_level(logging.WARNING, logger="sentinelle"):
        assert [r.id for r in feedback.read(path)] == ["1"]
    assert "line 2 is incomplete" in caplog.text
    feedback.Store(path).add(feedback.record("call me", "ham", "3"))
    assert [r["id"] for r in lines(path)] == ["1", "3"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "a", "label": "spam"}\nnot json\n', "line 2: not valid JSON"),
        (b'{"text": "a", "label": "maybe"}\n', "line 1: label 'maybe' is invalid"),
        (b'{"text": "", "label": "ham"}\n', "line 1: text '' is invalid"),
        (b'{"text": "a", "label": "ham", "when": 1}\n', "line 1: a record is an object"),
    ],
)
def test_a_bad_line_is_a_one_line_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        feedback.read(path)


# --------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


@pytest.fixture
def served(model_path: Path, tmp_path: Path) -> Iterator[tuple[str, Path, object]]:
    store = tmp_path / "feedback.jsonl"
    proc, url = serve(model_path, tmp_path / "server.log", "--feedback", str(store))
    try:
        wait_for(f"{url}/readyz", proc, tmp_path / "server.log", 200)
        yield url, store, proc
    finally:
        stop(proc)


def test_post_feedback_stores_validates_and_counts(served: tuple) -> None:
    url, store, _ = served
    with httpx.Client(base_url=url, timeout=30) as c:
        body = {"text": "Parcel held, pay 1.99 now", "label": "spam", "id": "r1", "source": "t"}
        first = c.post("/feedback", json=body)
        assert first.status_code == 201 and first.json() == {**body}
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
        assert c.get("/feedback/stats").json() == {"total": 2, "by_label": {"ham": 1, "spam": 1}}
    assert [r["id"] for r in lines(store)] == ["r1", None]


def test_without_feedback_file_there_is_no_feedback_endpoint(model_path: Path, tmp_path: Path):
    proc, url = serve(model_path, tmp_path / "server.log")
    try:
        wait_for(f"{url}/readyz", proc, tmp_path / "server.log", 200)
        assert httpx.post(f"{url}/feedback", json={"text": "a", "label": "spam"}).status_code == 404
    finally:
        stop(proc)


def test_a_server_killed_mid_write_leaves_a_parseable_file(served: tuple) -> None:
    url, store, proc = served
    acknowledged: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
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
    records = feedback.read(store)  # raises on any bad line
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) >= 100
    assert set(acknowledged) <= set(ids)  # every 201 was on disk


# ------------------------------------------------------------------------------ the CLI


def test_cli_add_import_and_stats(tmp_path: Path) -> None:
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
        "Claim your parcel",
        cwd=tmp_path,
    )
    assert json.loads(out.stdout)["id"] == "x1"
    batch = tmp_path / "reports.csv"
    batch.write_text("id,text,label\nx1,dup,ham\nx2,see you,ham\n,free cash,1\n")
    proc = sh(
        "sentinelle", "feedback", "import", "--file", store, batch, "--source", "csv", cwd=tmp_path
    )
    assert "stored 2 record(s)" in proc.stderr and "1 already stored" in proc.stderr
    stats = sh("sentinelle", "feedback", "stats", "--file", store, cwd=tmp_path)
    assert json.loads(stats.stdout) == {"total": 3, "by_label": {"ham": 1, "spam": 2}}

    before = store.read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,ham\nwhat,perhaps\n")
    proc = sh("sentinelle", "feedback", "import", "--file", store, bad, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "row 2 (line 3): label 'perhaps' is not a label" in proc.stderr
    assert store.read_bytes() == before  # nothing of a bad file is stored
