"""Nothing one request can break: work budgets, bodies and headers cut at their limits, the
event loop free while scoring, and reports validated at the door like every reader does."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tiny_model
from sentinelle import feedback_store
from sentinelle.serving import tokens
from sentinelle_tools.benchmarks.attacks import words
from test_api import serve, stop, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, dict, Path]]:
    """A server with small work budgets (max_chars 200, max_batch 5: see test_api.serve),
    --feedback and a feedback token; its URL, port, headers and feedback file."""
    tmp = tmp_path_factory.mktemp("limits")
    model = tiny_model.make(tmp)
    file, store = tmp / "tokens.json", tmp / "feedback.jsonl"
    headers = {"Authorization": f"Bearer {tokens.add(file, 'door', ('feedback',))[1]}"}
    log = tmp / "server.log"
    proc, url = serve(
        model,
        log,
        "--max-batch-chars",
        "900",
        "--max-explain-work",
        "2000",
        "--tokens",
        str(file),
        "--feedback",
        str(store),
        "--feedback-burst",
        "1000",
    )
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        yield url, int(url.rsplit(":", 1)[1]), headers, store
    finally:
        stop(proc)


def test_a_request_over_the_work_budget_is_a_413_naming_it(server: tuple) -> None:
    url, _, _, _ = server
    with httpx.Client(base_url=url, timeout=30) as c:
        limits = c.get("/model").json()["limits"]
        assert (limits["max_batch_chars"], limits["max_explain_work"]) == (900, 2000)
        batch = c.post("/predict/batch", json={"texts": ["x" * 200] * 5})  # 1,000 characters
        assert batch.status_code == 413 and batch.json() == {
            "detail": "characters in the request: 1000 is over max_batch_chars = 900",
            "limit": "max_batch_chars",
            "allowed": 900,
            "value": 1000,
        }
        explained = c.post("/predict?explain=20", json={"text": "x" * 101})  # 2,020
        assert explained.status_code == 413 and explained.json()["limit"] == "max_explain_work"
        assert explained.json()["value"] == 2020
        assert c.post("/predict?explain=20", json={"text": "x" * 100}).status_code == 200
        assert c.post("/predict/batch", json={"texts": ["x" * 180] * 5}).status_code == 200
        described = c.get("/openapi.json").json()["paths"]["/predict/batch"]["post"]
        assert "max_batch_chars" in described["responses"]["413"]["description"]


def raw_request(port: int, head: bytes, body: Iterator[bytes]) -> tuple[int, bytes]:
    """Send ``head`` then ``body`` until the server stops reading; (bytes sent, answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head)
        sent = 0
        try:
            for chunk in body:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while data := s.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    return sent, answer


def chunks(count: int, size: int = 1 << 20) -> Iterator[bytes]:
    for _ in range(count):
        yield b"%x\r\n" % size + b"[" * size + b"\r\n"
    yield b"0\r\n\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        b"Transfer-Encoding: chunked\r\n",
        b"Content-Length: 100\r\nTransfer-Encoding: chunked\r\n",  # a lying length
    ],
)
def test_a_body_over_the_limit_is_cut_while_it_is_read(server: tuple, framing: bytes) -> None:
    url, port, _, _ = server
    limit = httpx.get(f"{url}/model").json()["limits"]["max_body_bytes"]
    head = b"POST /predict/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    total = 400 << 20
    sent, answer = raw_request(port, head + framing + b"\r\n", chunks(total >> 20))
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", answer[:200]
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["limit"] == "max_body_bytes" and limit < body["value"] <= limit + (1 << 21)
    assert sent < total  # the server answered and hung up long before the body's end
    assert b"connection: close" in answer.lower()


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server: tuple) -> None:
    _, port, _, _ = server
    head = (
        b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 400000000\r\n\r\n"
    )
    _, answer = raw_request(port, head, iter([]))
    assert answer.startswith(b"HTTP/1.1 413") and b'"value":400000000' in answer


@pytest.mark.parametrize("pieces", [1, 10])
def test_headers_over_the_limit_get_a_431(server: tuple, pieces: int) -> None:
    """Whole (counted by the app) or arriving piece by piece (h11's incomplete-event limit)."""
    _, port, _, _ = server
    header = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 4000) for i in range(10)) + b"\r\n"
    step = -(-len(header) // pieces)
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            for i in range(pieces):
                s.sendall(header[i * step : (i + 1) * step])
                if select.select([s], [], [], 0.05 if pieces > 1 else 0)[0]:
                    break  # answered (and closed) before the headers' end
            while data := s.recv(65536):
                answer += data
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert b'"limit":"max_header_bytes","allowed":16384' in answer


def test_healthz_answers_while_the_heaviest_request_is_scored(tmp_path: Path) -> None:
    """The heaviest request the default budget accepts (200,000 characters of distinct words,
    explained) is scored in a worker thread: /healthz keeps answering until it is done."""
    model = tiny_model.make(tmp_path)
    log = tmp_path / "server.log"
    proc, url = serve(model, log, "--max-batch", "1000", "--max-chars", "5000")
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        port = int(url.rsplit(":", 1)[1])
        texts = [words(5000, i) for i in range(40)]  # 200,000 characters x explain 10
        body = json.dumps({"texts": texts}).encode()
        heavy = socket.create_connection(("127.0.0.1", port), timeout=120)
        heavy.sendall(
            b"POST /predict/batch?explain=10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        answered_meanwhile = 0
        with httpx.Client(base_url=url, timeout=60) as c:
            while not select.select([heavy], [], [], 0)[0]:  # no byte of its answer yet
                assert c.get("/healthz").status_code == 200
                if not select.select([heavy], [], [], 0)[0]:
                    answered_meanwhile += 1
        answer = b""
        while data := heavy.recv(1 << 20):
            answer += data
        heavy.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        predictions = json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"]
        assert len(predictions) == 40 and all("explanation" in p for p in predictions)
        assert answered_meanwhile >= 3  # answered while the heavy one was still being scored
    finally:
        stop(proc)


def test_a_report_is_validated_at_the_door_like_every_reader_does(server: tuple) -> None:
    url, _, headers, store = server
    with httpx.Client(base_url=url, timeout=30, headers=headers) as c:
        for text, message in (
            ("call me\x00now", "must hold no NUL byte"),
            ("x" * (feedback_store.MAX_CHARS + 1), "at most 5000 characters"),
        ):
            r = c.post("/feedback", json={"text": text, "label": "spam"})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "text"]
            assert message in r.json()["detail"][0]["msg"]
        # The server's --max-chars (200 here) is not the store's limit: 5,000 is.
        assert c.post("/feedback", json={"text": "y" * 5000, "label": "ham"}).status_code == 201
    assert len(feedback_store.read(store)) == 1  # what was stored can be read back


def test_a_junk_line_never_stops_the_server(tmp_path: Path) -> None:
    """A store holding junk (a torn line, a NUL record written by hand) still takes reports
    after a restart, and its stats count what was left out."""
    model = tiny_model.make(tmp_path)
    file, store = tmp_path / "tokens.json", tmp_path / "feedback.jsonl"
    headers = {"Authorization": f"Bearer {tokens.add(file, 'ops', ('admin',))[1]}"}
    store.write_bytes(
        b'{"text": "free cash", "label": "spam"}\n'
        b"garbage\n"
        b'{"text": "a\\u0000b", "label": "ham"}\n'
        b'{"text": "torn'
    )
    log = tmp_path / "server.log"
    proc, url = serve(model, log, "--tokens", str(file), "--feedback", str(store))
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        with httpx.Client(base_url=url, timeout=30, headers=headers) as c:
            stats = c.get("/feedback/stats")
            assert stats.status_code == 200 and stats.json()["skipped"] == 2
            assert [p["line"] for p in stats.json()["problems"]] == [2, 3]
            assert c.post("/feedback", json={"text": "see you", "label": "ham"}).status_code == 201
            after = c.get("/feedback/stats").json()
            assert (after["total"], after["skipped"]) == (2, 2)  # the torn tail was cut off
    finally:
        stop(proc)
    parsed = feedback_store.scan(store.read_bytes(), str(store))
    assert [r.text for r in parsed.records] == ["free cash", "see you"] and parsed.skipped == 2
