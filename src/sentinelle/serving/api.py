"""The HTTP API: a FastAPI app that scores messages with one model loaded at start-up.

    GET  /healthz         the process is alive (and the model version once loaded)
    GET  /readyz          200 once the model is loaded, 503 before (or if loading failed)
    GET  /metrics         Prometheus metrics (serving.observability)
    POST /predict         {"text": "..."} -> spam_score, is_spam, threshold, operating_point,
                          model_version; ?operating_point=NAME picks a named threshold
    POST /predict/batch   {"texts": ["...", ...]} (at most ``max_batch``)
                          both with ``?explain=K``: the K words that pushed each way
    GET  /model           model version, thresholds (operating points) and metadata
    POST /feedback        {"text": ..., "label": "spam"|"ham", "id": ..., "source": ...}
                          (with ``sentinelle serve --feedback FILE --tokens TOKENS``, a
                          ``feedback`` token): 201 stored, 200 if its id was already stored
    GET  /feedback/stats  records stored, by label, and the lines of the file left out
    GET  /                the web page (``serving.page``), its files under /page/
    GET  /docs, /openapi.json

The model is loaded once, in a thread started by the app's lifespan, with the
safe loader (allowlisted types, hash checked against the metadata); until it is
loaded /readyz and the prediction endpoints answer 503. Requests are validated
by pydantic: empty or over-long texts, over-large batches, wrong types and
malformed JSON get a 422 that says what is wrong. With a token file (``tokens``),
``Authorization: Bearer <token>`` says who calls (``serving.auth``): /feedback always
needs a ``feedback`` token; /predict, /predict/batch and /model need a ``predict`` token
only with ``predict_auth="required"``; /healthz, /readyz and /metrics are open. Scoring
runs in worker threads, a bounded number at once, never on the event loop. Serve it with
`sentinelle serve`.
"""

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentinelle import feedback_store
from sentinelle.errors import UserError
from sentinelle.modeling import metadata, operating_points
from sentinelle.modeling.inference import top_features
from sentinelle.serving import docs, explained, feedback_api, page
from sentinelle.serving.auth import Auth, Rate, RateLimiter, parse_rate
from sentinelle.serving.explained import Explain, Explanation
from sentinelle.serving.limits import BodyLimit, Budget, OverBudget
from sentinelle.serving.observability import Metrics, Observed
from sentinelle.serving.scorer import (
    FEEDBACK_BURST,
    FEEDBACK_RATE,
    MAX_BATCH,
    MAX_BATCH_CHARS,
    MAX_CHARS,
    MAX_EXPLAIN_WORK,
    MAX_HEADER_BYTES,
    SCORING_JOBS,
    Scorer,
    evaluation_for,
    metadata_path_for,
)
from sentinelle.serving.tokens import Verifier

log = logging.getLogger("sentinelle.api")
TOP_NGRAMS = 20  # per class, in the model card
FEEDBACK_WRITERS = 4  # reports scored and written at once
SINGLE_JOBS = 8  # /predict requests scored at once (batches: scoring_jobs)


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: any str (even a lone surrogate from the request) encodes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


class Prediction(BaseModel):
    spam_score: float = Field(ge=0, le=1, description="Probability-like spam score")
    is_spam: bool = Field(description="spam_score >= the model's threshold")
    explanation: Explanation | None = Field(None, description="Only with ?explain=K")


class PredictResponse(Prediction):
    threshold: float
    operating_point: str
    model_version: str


class BatchResponse(BaseModel):
    predictions: list[Prediction]
    threshold: float
    operating_point: str
    model_version: str


class OperatingPoint(BaseModel):
    threshold: float
    max_ham_fpr: float | None = Field(description="the ham FPR budget it was chosen for")
    recall: float | None = Field(description="spam recall, cross-validated on train")
    ham_fpr: float | None = Field(description="ham FPR, cross-validated on train")


class ModelInfo(BaseModel):
    model_version: str
    threshold: float
    default_operating_point: str
    operating_points: dict[str, OperatingPoint]
    top_ngrams: dict[str, list[tuple[str, float]]] = Field(
        description="the n-grams that weigh most toward spam and toward ham (weight each), as "
        "a person reads them: word n-grams as words, char n-grams quoted, · for a word boundary"
    )
    evaluation: dict[str, Any] | None = Field(
        description="the test headline of this model (evaluation.json beside the model file; "
        "null when it is absent)"
    )
    metadata: dict[str, Any]
    limits: dict[str, int] = Field(
        description="the request limits: max_batch, max_chars, the work budget "
        "(max_batch_chars, max_explain_work), max_body_bytes, max_header_bytes, scoring_jobs"
    )


class Status(BaseModel):
    status: str
    detail: str | None = None
    model_version: str | None = None


class _Limits(BaseModel):
    max_batch: int
    max_chars: int
    max_batch_chars: int
    max_explain_work: int
    max_body_bytes: int
    max_header_bytes: int
    scoring_jobs: int


def _clear_message(error: dict[str, Any]) -> str:
    kind, loc = error.get("type"), tuple(error.get("loc", ()))
    if kind == "string_pattern_mismatch":
        return "text is empty or only white space"
    if kind == "json_invalid":
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"malformed JSON{at}: {error.get('ctx', {}).get('error', 'cannot parse the body')}"
    if kind in ("model_attributes_type", "string_unicode") and loc == ("body",):
        return (
            'the body must be a JSON object such as {"text": "..."}, '
            "sent as Content-Type: application/json"
        )
    return str(error.get("msg", "invalid value"))


async def _validation_error(request: Request, exc: Exception) -> AsciiJSONResponse:
    """422 listing each problem as where (loc), what (msg) and its type; never echoes the input."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": _clear_message(e),
            "type": str(e.get("type")),
        }
        for e in exc.errors()
    ]
    return AsciiJSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> AsciiJSONResponse:
    """FastAPI answers 400 for a body that is not UTF-8; it is malformed JSON like any other:
    422."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and request.method == "POST":
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            byte = cause.object[cause.start]
            msg = f"the body is not valid UTF-8 (byte {byte:#04x} at offset {cause.start})"
        elif isinstance(cause, RecursionError):
            msg = "the body is nested too deeply (JSON arrays or objects over ~1000 levels)"
        else:
            msg = f"cannot parse the body ({type(cause).__name__ if cause else exc.detail})"
        detail = [{"loc": ["body"], "msg": f"malformed JSON: {msg}", "type": "json_invalid"}]
        return AsciiJSONResponse({"detail": detail}, status_code=422)
    return AsciiJSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


def create_app(
    model_path: Path,
    metadata_path: Path | None = None,
    *,
    max_batch: int = MAX_BATCH,
    max_chars: int = MAX_CHARS,
    json_log: bool = False,
    feedback_path: Path | None = None,
    tokens_path: Path | None = None,
    predict_auth: Literal["open", "required"] = "open",
    feedback_rate: Rate | None = None,
    feedback_burst: int = FEEDBACK_BURST,
    scoring_jobs: int = SCORING_JOBS,
    max_batch_chars: int = MAX_BATCH_CHARS,
    max_explain_work: int = MAX_EXPLAIN_WORK,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> FastAPI:
    """The app for one model file; limits are part of its OpenAPI schema. ``json_log``: one
    JSON access-log line per request (logger ``sentinelle.access``). With ``feedback_path``,
    ``POST /feedback`` appends reported verdicts to that file; it needs a ``feedback`` token
    of ``tokens_path``, ``feedback_rate`` a reporter (after a burst of ``feedback_burst``).
    ``predict_auth="required"``: scoring and the model card need a ``predict`` token.
    ``scoring_jobs``: batch requests scored at once (each in a worker thread; single messages
    have 8 threads of their own, so a batch never queues them); a request over
    ``max_batch_chars`` characters, or characters x ``explain`` over ``max_explain_work``,
    gets a 413 before any scoring."""
    state: dict[str, Any] = {"scorer": None, "error": None, "card": {}}
    metrics = Metrics()
    auth = Auth(
        Verifier(tokens_path) if tokens_path is not None else None,
        RateLimiter(feedback_rate or parse_rate(FEEDBACK_RATE), feedback_burst),
    )
    jobs = anyio.CapacityLimiter(scoring_jobs)  # batches
    singles = anyio.CapacityLimiter(SINGLE_JOBS)  # one message: never queued behind a batch
    guarded = [Depends(auth.need("predict"))] if predict_auth == "required" else []
    budget = Budget(max_batch_chars, max_explain_work)
    # A body larger than any valid request could be (\ud83d\ude00: 12 bytes, 1 character).
    longest = max(max_chars, feedback_store.MAX_CHARS, min(max_batch * max_chars, max_batch_chars))
    limits = _Limits(
        max_batch=max_batch,
        max_chars=max_chars,
        max_batch_chars=max_batch_chars,
        max_explain_work=max_explain_work,
        max_body_bytes=longest * 12 + max_batch * 16 + 4096,
        max_header_bytes=max_header_bytes,
        scoring_jobs=scoring_jobs,
    )
    Text = Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_chars, pattern=r"\S"),
        Field(description=f"The raw message, 1 to {max_chars} characters, not only white space"),
    ]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"text": "WIN a FREE prize! Call 09061701461 now"}]},
        )
        text: Text

    class BatchRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {"texts": ["Free entry to win £1000, txt WIN to 80086", "See you at lunch?"]}
                ]
            },
        )
        texts: list[Text] = Field(
            min_length=1, max_length=max_batch, description=f"1 to {max_batch} messages"
        )

    def load() -> None:
        started = time.perf_counter()
        try:
            state["scorer"] = Scorer.load(model_path, metadata_path)
        except UserError as exc:
            state["error"] = str(exc)
            log.error("cannot load the model: %s", exc)
            return
        except Exception as exc:  # a background thread: keep the reason for /readyz
            state["error"] = f"{type(exc).__name__}: {exc}"
            log.exception("cannot load the model")
            return
        version = state["scorer"].version
        state["card"] = {
            "top_ngrams": top_features(state["scorer"].model, TOP_NGRAMS),
            "evaluation": evaluation_for(model_path, version),
        }
        metrics.model_loaded(version, time.perf_counter() - started, model_path.stat().st_mtime)
        log.info("model %s loaded from %s", version, model_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        loading = asyncio.create_task(asyncio.to_thread(load))
        yield
        await loading  # a thread cannot be cancelled; let it finish before exiting

    app = FastAPI(
        title="Sentinelle",
        summary="SMS spam scores from the Sentinelle model",
        version=__import__("sentinelle").__version__,
        lifespan=lifespan,
        default_response_class=AsciiJSONResponse,
        docs_url=None,  # /docs and /redoc from local files: serving/docs.py
        redoc_url=None,
        exception_handlers={
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
        },
    )
    app.add_middleware(
        BodyLimit, max_bytes=limits.max_body_bytes, max_header_bytes=max_header_bytes
    )
    app.add_middleware(
        Observed,
        metrics=metrics,
        version=lambda: state["scorer"].version if state["scorer"] is not None else None,
        json_log=json_log,
    )
    not_ready = {503: {"model": Status, "description": "The model is not loaded (yet)"}}
    invalid = {422: {"description": "Invalid request: the detail names each bad field and why"}}
    costly = {
        413: {
            "description": f"Over the work budget, before any scoring: more than "
            f"{max_batch_chars} characters in the request (max_batch_chars), or characters x "
            f"explain over {max_explain_work} (max_explain_work); the body names the limit and "
            "the value"
        }
    }

    async def run(fn: Any, *args: Any, limiter: anyio.CapacityLimiter = jobs) -> Any:
        """Scoring work: in a worker thread, at most ``limiter``'s tokens at once."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    def scorer() -> Any:
        s = state["scorer"]
        if s is None:
            raise _NotReady(state["error"])
        return s

    def resolve_point(s: Scorer, name: str | None) -> tuple[str, float]:
        try:
            return s.operating_point(name)
        except UserError as exc:
            error = {"type": "value_error", "loc": ("query", "operating_point"), "msg": str(exc)}
            raise RequestValidationError([error]) from None

    # The names are in the metadata, read here (the model itself loads in the background), so
    # that the OpenAPI schema lists them: an unknown name is a 422 that names the allowed ones.
    names = _point_names(metadata_path_for(model_path, metadata_path))
    Point = Annotated[
        Literal[names],  # type: ignore[valid-type]
        Query(
            description="a named operating point of the model (GET /model lists them); "
            "default: the model's own threshold"
        ),
    ]

    @app.exception_handler(OverBudget)
    async def _over_budget(request: Request, exc: OverBudget) -> AsciiJSONResponse:
        return AsciiJSONResponse(exc.body(), status_code=413)

    @app.exception_handler(_NotReady)
    async def _not_ready(request: Request, exc: _NotReady) -> AsciiJSONResponse:
        return _status_response(exc.error)

    @app.get("/healthz", response_model=Status, tags=["health"])
    async def healthz() -> Status:
        """The process is alive; the model's version once it is loaded (see /readyz)."""
        s = state["scorer"]
        return Status(status="ok", model_version=s.version if s is not None else None)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", response_model=Status, responses=not_ready, tags=["health"])
    async def readyz() -> Any:
        """Ready to score: 200 once the model is loaded, 503 while loading or if it failed."""
        s = state["scorer"]
        if s is None:
            return _status_response(state["error"])
        return Status(status="ready", model_version=s.version)

    denied = (
        {
            401: {"description": "No token, or an unknown or revoked one"},
            403: {"description": "The token lacks the predict scope"},
        }
        if guarded
        else {}
    )

    @app.get(
        "/model",
        response_model=ModelInfo,
        responses={**not_ready, **denied},
        tags=["model"],
        dependencies=guarded,
    )
    async def model() -> ModelInfo:
        """The loaded model's version, threshold, metadata and the request limits."""
        s = scorer()
        stored = s.metadata.get("operating_points") or {}
        points = {
            name: OperatingPoint(
                threshold=threshold,
                max_ham_fpr=stored.get(name, {}).get("max_ham_fpr"),
                recall=stored.get(name, {}).get("recall"),
                ham_fpr=stored.get(name, {}).get("ham_fpr"),
            )
            for name, threshold in s.thresholds.items()
        }
        return ModelInfo(
            model_version=s.version,
            threshold=s.threshold,
            default_operating_point="default",
            operating_points=points,
            top_ngrams=state["card"]["top_ngrams"],
            evaluation=state["card"]["evaluation"],
            metadata=s.metadata,
            limits=limits.model_dump(),
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={**not_ready, **invalid, **costly, **denied},
        response_model_exclude_none=True,
        tags=["predict"],
        dependencies=guarded,
    )
    async def predict(
        request: PredictRequest,
        operating_point: Point = operating_points.DEFAULT,
        explain: Explain = None,
    ) -> PredictResponse:
        """Score one message (with ``?explain=K``: and say why)."""
        s = scorer()
        budget.check([request.text], explain)
        point, threshold = resolve_point(s, operating_point)
        explanation = None
        if explain is None:
            ((score, is_spam),) = await run(s.predict, [request.text], threshold, limiter=singles)
        else:
            ((score, is_spam, explanation),) = await run(
                s.predict_explained, [request.text], explain, threshold, limiter=singles
            )
        metrics.observe_scores(s.version, point, (score,), int(is_spam))
        return PredictResponse(
            spam_score=score,
            is_spam=is_spam,
            threshold=threshold,
            operating_point=point,
            model_version=s.version,
            explanation=explanation,
        )

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses={**not_ready, **invalid, **costly, **denied},
        response_model_exclude_none=True,
        tags=["predict"],
        dependencies=guarded,
    )
    async def predict_batch(
        request: BatchRequest,
        operating_point: Point = operating_points.DEFAULT,
        explain: Explain = None,
    ) -> BatchResponse:
        """Score up to ``max_batch`` messages, in order (with ``?explain=K``: and say why),
        within the work budget (``GET /model``'s ``limits``)."""
        s = scorer()
        budget.check(request.texts, explain)
        point, threshold = resolve_point(s, operating_point)
        if explain is None:
            predicted = await run(s.predict, request.texts, threshold)
            predictions = [Prediction(spam_score=score, is_spam=spam) for score, spam in predicted]
        else:
            explained = await run(s.predict_explained, request.texts, explain, threshold)
            predicted = [(score, spam) for score, spam, _ in explained]
            predictions = [
                Prediction(spam_score=score, is_spam=spam, explanation=why)
                for score, spam, why in explained
            ]
        metrics.observe_scores(
            s.version, point, [score for score, _ in predicted], sum(spam for _, spam in predicted)
        )
        return BatchResponse(
            predictions=predictions,
            threshold=threshold,
            operating_point=point,
            model_version=s.version,
        )

    def verdict(text: str) -> tuple[float | None, str | None]:
        s = state["scorer"]
        if s is None:
            return None, None
        return float(s.scores([text])[0]), s.version

    if feedback_path is not None:
        feedback_api.add_routes(
            app,
            feedback_store.Store(feedback_path),
            auth,
            verdict,
            anyio.CapacityLimiter(FEEDBACK_WRITERS),
            invalid,
        )
    explained.install(app, AsciiJSONResponse)
    page.install(app, model_path, scorer, guarded)
    docs.install(app)
    return app


def _point_names(metadata_path: Path) -> tuple[str, ...]:
    """The operating points a model's metadata names; only ``default`` if it cannot be read
    (then the model will not load either, and /readyz says why)."""
    try:
        return tuple(operating_points.thresholds(metadata.read(metadata_path)))
    except UserError:
        return (operating_points.DEFAULT,)


class _NotReady(Exception):
    def __init__(self, error: str | None) -> None:
        self.error = error


def _status_response(error: str | None) -> AsciiJSONResponse:
    status = (
        Status(status="error", detail=error)
        if error
        else Status(status="loading", detail="the model is loading")
    )
    return AsciiJSONResponse(status.model_dump(), status_code=503)
