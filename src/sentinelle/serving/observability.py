"""What an operator sees of the API: Prometheus metrics, request ids, JSON access logs.

``Metrics`` holds one app's collectors in its own ``CollectorRegistry`` (``GET /metrics``
renders it in the Prometheus text format). ``Observed`` is the pure-ASGI middleware that, for
every request, times it, counts it by route template and status, sets ``X-Request-ID``
(echoing a valid incoming one, else a new one) and ``X-Model-Version``, and, with
``--log-format json``, logs one JSON line. No message text ever goes into a label or a log.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

access_log = logging.getLogger("sentinelle.access")

REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05, 0.1, ..., 1.0


class Metrics:
    """The collectors of one app (its own registry, so apps and tests do not share counts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sentinelle_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "sentinelle_request_duration_seconds",
            "Time to answer a request, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "sentinelle_batch_size",
            "Messages per scoring request",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "sentinelle_spam_score",
            "Spam scores given, by model version (an online drift signal)",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.scored = Counter(
            "sentinelle_messages_scored", "Messages scored", ["model_version"], registry=r
        )
        self.flagged = Counter(
            "sentinelle_messages_flagged",
            "Messages flagged as spam, by model version and operating point",
            ["model_version", "operating_point"],
            registry=r,
        )
        self.load_seconds = Gauge(
            "sentinelle_model_load_seconds", "Time the model took to load", registry=r
        )
        self.loaded_at = Gauge(
            "sentinelle_model_loaded_timestamp_seconds", "When the model was loaded", registry=r
        )
        self.model_age = Gauge(
            "sentinelle_model_age_seconds",
            "Seconds since the served model file was written (its modification time)",
            registry=r,
        )
        self.info = Gauge(
            "sentinelle_model_info", "The served model (value 1)", ["model_version"], registry=r
        )

    def model_loaded(self, version: str, seconds: float, written_at: float) -> None:
        self.load_seconds.set(seconds)
        self.loaded_at.set_to_current_time()
        self.model_age.set_function(lambda: time.time() - written_at)
        self.info.labels(model_version=version).set(1)

    def observe_scores(
        self, version: str, point: str, scores: Sequence[float], flagged: int
    ) -> None:
        """Count one scoring request: its size, each score, how many were flagged."""
        self.batch_size.observe(len(scores))
        histogram = self.scores.labels(model_version=version)
        for score in scores:
            histogram.observe(score)
        self.scored.labels(model_version=version).inc(len(scores))
        self.flagged.labels(model_version=version, operating_point=point).inc(flagged)


def request_id(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The request's valid ``X-Request-ID`` (1-128 of ``A-Za-z0-9._:-``), else a new one."""
    for key, value in headers:
        if key == b"x-request-id" and REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex.encode()


class Observed:
    """ASGI middleware: metrics, ``X-Request-ID`` and ``X-Model-Version``, the access log."""

    def __init__(
        self, app: Any, metrics: Metrics, version: Callable[[], str | None], json_log: bool
    ) -> None:
        self.app, self.metrics, self.version, self.json_log = app, metrics, version, json_log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id(scope["headers"])
        status = 500

        async def send_with_headers(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid))
                version = self.version()
                if version is not None:
                    headers.append((b"x-model-version", version.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - start
            # The route template (``/predict``), never the raw path: bounded label values.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route=route, method=scope["method"], status=status).inc()
            self.metrics.latency.labels(route=route).observe(seconds)
            if self.json_log:
                access_log.info(
                    json.dumps(
                        {
                            "route": route,
                            "method": scope["method"],
                            "status": status,
                            "latency_ms": round(seconds * 1000, 3),
                            "request_id": rid.decode(),
                            "model_version": self.version(),
                        },
                        separators=(",", ":"),
                    )
                )
