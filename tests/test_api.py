"""The HTTP API: a real uvicorn process on 127.0.0.1, a real HTTP client, and schema fuzzing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import tiny_model
from helpers import ROOT, env
from sentinelle.serving.api import create_app
from sentinelle.serving.scorer import Scorer

MAX_BATCH, MAX_CHARS = 5, 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    model: Path, log: Path, *extra: str, access_log: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    e = env()
    e["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentinelle.cli",
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--max-batch",
            str(MAX_BATCH),
            "--max-chars",
            str(MAX_CHARS),
            *([] if access_log else ["--no-access-log"]),
            *extra,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=e,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_for(
    url: str, proc: subprocess.Popen[bytes], log: Path, status: int, timeout: float = 120
) -> httpx.Response:
    """Poll ``url`` until it answers ``status`` (the server is starting; its log is shown on
    failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited {proc.returncode}:\n{log.read_text()}"
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == status:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} in {timeout} s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of `sentinelle serve` running on a free port; stopped when the module ends."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, url = serve(model_path, log)
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def test_health_ready_and_model_info(client: httpx.Client, model_path: Path) -> None:
    meta = json.loads(model_path.with_suffix(".json").read_text())
    version = meta["model_version"]
    assert client.get("/healthz").json() == {
        "status": "ok",
        "detail": None,
        "model_version": version,
    }
    assert client.get("/readyz").json()["model_version"] == meta["model_version"]
    info = client.get("/model").json()
    assert (
        info["model_version"] == meta["model_version"] and info["threshold"] == tiny_model.THRESHOLD
    )
    assert info["metadata"] == meta and info["limits"] == {
        "max_batch": MAX_BATCH,
        "max_chars": MAX_CHARS,
        "max_batch_chars": 200_000,
        "max_explain_work": 2_000_000,
        "max_body_bytes": 5000 * 12 + MAX_BATCH * 16 + 4096,  # feedback's 5,000 characters
        "max_header_bytes": 16384,
        "scoring_jobs": 2,
    }
    assert info["default_operating_point"] == "default"
    assert info["operating_points"] == {
        "strict": {
            "threshold": tiny_model.STRICT,
            "max_ham_fpr": 0.0001,
            "recall": 0.5,
            "ham_fpr": 0.0,
        },
        "default": {
            "threshold": tiny_model.THRESHOLD,
            "max_ham_fpr": 0.001,
            "recall": 0.9,
            "ham_fpr": 0.0,
        },
    }


def test_predict_matches_the_library_at_the_stored_threshold(
    client: httpx.Client, model_path: Path
) -> None:
    scorer = Scorer.load(model_path)
    messages = [*tiny_model.SPAM[:2], *tiny_model.HAM[:2], "Call me when you're free"]
    for text, (score, is_spam) in zip(messages, scorer.predict(messages), strict=True):
        body = client.post("/predict", json={"text": text}).json()
        assert body == {
            "spam_score": pytest.approx(score),
            "is_spam": is_spam,
            "threshold": tiny_model.THRESHOLD,
            "operating_point": "default",
            "model_version": scorer.version,
        }
    batch = client.post("/predict/batch", json={"texts": messages}).json()
    assert [(p["spam_score"], p["is_spam"]) for p in batch["predictions"]] == [
        (pytest.approx(s), b) for s, b in scorer.predict(messages)
    ]
    assert {p["is_spam"] for p in batch["predictions"]} == {True, False}


def test_a_request_picks_an_operating_point(client: httpx.Client, model_path: Path) -> None:
    scorer = Scorer.load(model_path)
    spam = tiny_model.SPAM[:MAX_BATCH]
    scores = scorer.scores(spam)
    # Spam that the default threshold flags and the strict one lets through.
    between = [
        t
        for t, s in zip(spam, scores, strict=True)
        if tiny_model.THRESHOLD <= s < tiny_model.STRICT
    ]
    assert between, scores
    strict = client.post("/predict?operating_point=strict", json={"text": between[0]}).json()
    assert (strict["is_spam"], strict["threshold"], strict["operating_point"]) == (
        False,
        tiny_model.STRICT,
        "strict",
    )
    default = client.post("/predict", json={"text": between[0]}).json()
    assert (default["is_spam"], default["operating_point"]) == (True, "default")
    batch = client.post("/predict/batch?operating_point=strict", json={"texts": spam}).json()
    assert [p["is_spam"] for p in batch["predictions"]] == [
        bool(s >= tiny_model.STRICT) for s in scores
    ]
    assert batch["operating_point"] == "strict"
    for path in ("/predict", "/predict/batch"):
        body = {"text": "hi"} if path == "/predict" else {"texts": ["hi"]}
        bad = client.post(f"{path}?operating_point=lenient", json=body)
        assert bad.status_code == 422
        assert bad.json() == {
            "detail": [
                {
                    "loc": ["query", "operating_point"],
                    "msg": "Input should be 'default' or 'strict'",
                    "type": "literal_error",
                }
            ]
        }


@pytest.mark.parametrize(
    ("path", "body", "loc", "msg"),
    [
        ("/predict", {"text": ""}, ["body", "text"], "String should have at least 1 character"),
        ("/predict", {"text": " \n\t "}, ["body", "text"], "text is empty or only white space"),
        (
            "/predict",
            {"text": "a" * (MAX_CHARS + 1)},
            ["body", "text"],
            f"String should have at most {MAX_CHARS} characters",
        ),
        ("/predict", {"text": 42}, ["body", "text"], "Input should be a valid string"),
        ("/predict", {"text": None}, ["body", "text"], "Input should be a valid string"),
        ("/predict", {}, ["body", "text"], "Field required"),
        (
            "/predict",
            {"text": "hi", "lang": "en"},
            ["body", "lang"],
            "Extra inputs are not permitted",
        ),
        ("/predict", ["hi"], ["body"], 'the body must be a JSON object such as {"text": "..."}'),
        (
            "/predict/batch",
            {"texts": ["hi"] * (MAX_BATCH + 1)},
            ["body", "texts"],
            f"List should have at most {MAX_BATCH} items",
        ),
        ("/predict/batch", {"texts": []}, ["body", "texts"], "List should have at least 1 item"),
        ("/predict/batch", {"texts": "hi"}, ["body", "texts"], "Input should be a valid list"),
        (
            "/predict/batch",
            {"texts": ["hi", ""]},
            ["body", "texts", "1"],
            "String should have at least 1 character",
        ),
    ],
)
def test_invalid_requests_get_a_422_that_says_what_is_wrong(
    client: httpx.Client, path: str, body, loc, msg
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and e["msg"].startswith(msg) for e in errors), errors


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        (b'{"text": "unterminated', "malformed JSON at character 9: Unterminated string"),
        (
            b'{"text": "caf\xe9"}',
            "malformed JSON: the body is not valid UTF-8 (byte 0xe9 at offset 13)",
        ),
        (
            b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "malformed JSON: the body is nested too deeply (JSON arrays or objects over ~1000 "
            "levels)",
        ),
        (b"", "Field required"),
    ],
)
def test_malformed_bodies_get_a_422(client: httpx.Client, content: bytes, msg: str) -> None:
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith(msg), response.json()


@pytest.mark.parametrize("content", [b'{"text": "hi", "\\ud800": 1}', b'{"text": "a\\ud800b"}'])
def test_a_lone_surrogate_is_a_422_not_a_500(client: httpx.Client, content: bytes) -> None:
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "string_unicode"


def test_an_oversized_body_is_refused_before_it_is_read(client: httpx.Client) -> None:
    response = client.post(
        "/predict", content=b"x" * 10_000_000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_openapi_documents_the_limits(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    batch = schema["components"]["schemas"]["BatchRequest"]["properties"]["texts"]
    assert batch["maxItems"] == MAX_BATCH and batch["items"]["maxLength"] == MAX_CHARS
    assert client.get("/docs").status_code == 200


def test_a_model_that_fails_the_safe_loader_keeps_the_server_unready(tmp_path: Path) -> None:
    """Alive (healthz 200) but never ready (503 with the reason); predictions refused with 503."""
    path = tiny_model.make(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**meta, "model_sha256": "0" * 64}))
    log = tmp_path / "server.log"
    proc, url = serve(path, log)
    try:
        ready = wait_for(f"{url}/healthz", proc, log, 200)
        ready = wait_for(f"{url}/readyz", proc, log, 503)
        deadline = time.monotonic() + 60
        while ready.json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
            ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "error"
        assert "does not match the recorded" in ready.json()["detail"]
        assert httpx.post(f"{url}/predict", json={"text": "hi"}).status_code == 503
    finally:
        stop(proc)
    assert "cannot load the model" in log.read_text()


def test_serve_refuses_a_missing_model_at_once(tmp_path: Path) -> None:
    proc, _ = serve(tmp_path / "absent.skops", tmp_path / "log")
    assert proc.wait(timeout=120) == 2
    assert "absent.skops: not found" in (tmp_path / "log").read_text()


# The schema comes from the app object (the same code the server runs, with the same
# limits; building the app does not load the model); the requests go to the server.
fuzz_schema = schemathesis.openapi.from_dict(
    create_app(Path("unused.skops"), max_batch=MAX_BATCH, max_chars=MAX_CHARS).openapi()
)


@fuzz_schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzzed_requests_never_get_a_server_error(case, server: str) -> None:
    """Every operation, with data generated from the app's own OpenAPI schema (valid and
    invalid)."""
    case.call_and_validate(base_url=server)


def test_the_model_card_has_top_ngrams_and_the_evaluation_of_this_model(tmp_path: Path) -> None:
    model = tiny_model.make(tmp_path)
    version = json.loads(model.with_suffix(".json").read_text())["model_version"]
    card = {"model_version": version, "split": "test", "headline": {"recall": 0.9}}
    (tmp_path / "evaluation.json").write_text(json.dumps(card))
    proc, url = serve(model, tmp_path / "log")
    try:
        wait_for(f"{url}/readyz", proc, tmp_path / "log", 200)
        info = httpx.get(f"{url}/model").json()
        assert info["evaluation"] == card
        spam, ham = info["top_ngrams"]["spam"], info["top_ngrams"]["ham"]
        assert len(spam) == len(ham) == 20
        assert all(w > 0 for _, w in spam) and all(w < 0 for _, w in ham)
        assert [w for _, w in spam] == sorted((w for _, w in spam), reverse=True)
        # Named as a person reads them: words, or quoted characters; no vectoriser prefix.
        names = [name for name, _ in spam + ham]
        assert not any("__" in name for name in names)
        assert any(name.startswith("“") for name in names) and "free" in names
    finally:
        stop(proc)
    # An evaluation.json of another model is not shown as this one's.
    (tmp_path / "evaluation.json").write_text(json.dumps({**card, "model_version": "other"}))
    proc, url = serve(model, tmp_path / "log2")
    try:
        wait_for(f"{url}/readyz", proc, tmp_path / "log2", 200)
        assert httpx.get(f"{url}/model").json()["evaluation"] is None
    finally:
        stop(proc)
