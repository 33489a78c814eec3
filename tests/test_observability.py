"""What an operator sees of a real `sentinelle serve`: /metrics, request ids, model version
headers and JSON access logs, scraped and read as Prometheus and a log shipper would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import tiny_model
from sentinelle.serving.scorer import Scorer
from test_api import serve, stop, wait_for

TEXTS = [*tiny_model.SPAM[:2], *tiny_model.HAM[:2]]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.make(tmp_path_factory.mktemp("model"))


@pytest.fixture
def server(model_path: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh server (its counters start at zero) with JSON access logs on stdout."""
    log = tmp_path / "server.log"
    proc, url = serve(model_path, log, "--log-format", "json", access_log=True)
    try:
        wait_for(f"{url}/readyz", proc, log, 200)
        yield url, log
    finally:
        stop(proc)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_scores_and_flags(
    server: tuple[str, Path], model_path: Path
) -> None:
    url, _ = server
    scorer = Scorer.load(model_path)
    version = scorer.version
    with httpx.Client(base_url=url) as client:
        for text in TEXTS:
            assert client.post("/predict", json={"text": text}).status_code == 200
        assert (
            client.post("/predict/batch?operating_point=strict", json={"texts": TEXTS}).status_code
            == 200
        )
        assert client.post("/predict", json={"text": ""}).status_code == 422
        assert client.get("/no/such/page").status_code == 404
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    got = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("sentinelle_requests_total", route="/predict", method="POST", status="200") == 4
    assert value("sentinelle_requests_total", route="/predict", method="POST", status="422") == 1
    assert (
        value("sentinelle_requests_total", route="/predict/batch", method="POST", status="200") == 1
    )
    assert value("sentinelle_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value("sentinelle_request_duration_seconds_count", route="/predict") == 5
    assert value("sentinelle_batch_size_count") == 5 and value("sentinelle_batch_size_sum") == 8
    assert value("sentinelle_messages_scored_total", model_version=version) == 8
    assert value("sentinelle_spam_score_count", model_version=version) == 8
    scores = scorer.scores(TEXTS)
    assert value("sentinelle_spam_score_bucket", model_version=version, le="1.0") == 8
    assert value("sentinelle_spam_score_sum", model_version=version) == pytest.approx(
        2 * scores.sum()
    )
    flagged_default = int((scores >= tiny_model.THRESHOLD).sum())
    flagged_strict = int((scores >= tiny_model.STRICT).sum())
    assert (
        value("sentinelle_messages_flagged_total", model_version=version, operating_point="default")
        == flagged_default
    )
    assert (
        value("sentinelle_messages_flagged_total", model_version=version, operating_point="strict")
        == flagged_strict
    )
    assert value("sentinelle_model_info", model_version=version) == 1
    assert value("sentinelle_model_load_seconds") > 0
    assert value("sentinelle_model_age_seconds") >= 0
    assert not any(text in response.text for text in TEXTS)  # never a message in a label


def test_every_response_carries_the_model_version_and_a_request_id(
    server: tuple[str, Path],
) -> None:
    url, _ = server
    version = httpx.get(f"{url}/readyz").json()["model_version"]
    assert httpx.get(f"{url}/healthz").json()["model_version"] == version
    echoed = httpx.post(
        f"{url}/predict", json={"text": "hi"}, headers={"X-Request-ID": "req-42.a:b"}
    )
    assert echoed.headers["x-request-id"] == "req-42.a:b"
    assert echoed.headers["x-model-version"] == version
    for bad in ("two words", "x" * 129, "caf\u00e9"):
        response = httpx.post(
            f"{url}/predict", json={"text": ""}, headers={"X-Request-ID": bad.encode()}
        )
        assert response.status_code == 422 and response.headers["x-model-version"] == version
        new = response.headers["x-request-id"]
        assert new != bad and len(new) == 32 and int(new, 16) >= 0
    first, second = (httpx.get(f"{url}/model").headers["x-request-id"] for _ in range(2))
    assert first != second


def test_access_log_is_one_json_line_per_request_without_the_text(server: tuple[str, Path]) -> None:
    url, log = server
    secret = "my bank pin is 4321, call me"
    httpx.post(f"{url}/predict", json={"text": secret}, headers={"X-Request-ID": "abc"})
    httpx.post(f"{url}/predict/batch", json={"texts": [secret, "hi"]})
    health = httpx.get(f"{url}/healthz")
    version = health.json()["model_version"]
    deadline = time.monotonic() + 30  # a line is written just after its response is sent
    while time.monotonic() < deadline:
        text = log.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        if lines and lines[-1]["route"] == "/healthz":
            break
        time.sleep(0.05)
    assert secret not in text and "4321" not in text
    assert [(r["route"], r["method"], r["status"]) for r in lines[-3:]] == [
        ("/predict", "POST", 200),
        ("/predict/batch", "POST", 200),
        ("/healthz", "GET", 200),
    ]
    assert lines[-3]["request_id"] == "abc"
    assert all(r["model_version"] == version and r["latency_ms"] > 0 for r in lines[-3:])
    assert set(lines[-1]) == {
        "route",
        "method",
        "status",
        "latency_ms",
        "request_id",
        "model_version",
    }
