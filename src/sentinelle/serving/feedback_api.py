"""The feedback endpoints of the HTTP API (``sentinelle serve --feedback FILE --tokens TOKENS``).

POST /feedback        {"text", "label": "spam"|"ham", "id", "source"} with a ``feedback``
                      token: 201 with the stored record once it is on disk; 200 with the
                      stored one if its id was stored before. The record names its reporter
                      (the token's name) and the served model's verdict on the text (score,
                      model version); the client cannot set those.
GET  /feedback/stats  records stored, by label, and the lines of the file left out
"""

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from sentinelle import feedback_store
from sentinelle.serving.auth import Auth
from sentinelle.serving.tokens import Token

# The verdict of the served model on a text: (spam score, model version), or (None, None)
# while no model is loaded.
Verdict = Callable[[str], tuple[float | None, str | None]]


class FeedbackRecord(BaseModel):
    id: str | None
    label: Literal["spam", "ham"]
    source: str | None
    text: str
    reporter: str | None
    score: float | None
    model_version: str | None


class Problem(BaseModel):
    line: int
    reason: str


class FeedbackStats(BaseModel):
    total: int
    by_label: dict[str, int]
    skipped: int = Field(description="lines of the file left out: torn, junk or invalid")
    problems: list[Problem] = Field(description=f"the first {feedback_store.MAX_PROBLEMS} of them")


class FeedbackRequest(BaseModel):
    """The rules are those of every reader of the store (``sentinelle.feedback_store.record``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "Your parcel is waiting, pay 1.99 at ...", "label": "spam"}]
        },
    )
    text: str = Field(
        min_length=1,
        max_length=feedback_store.MAX_CHARS,
        pattern=r"\S",
        description=f"The message: 1 to {feedback_store.MAX_CHARS} characters, no NUL byte",
    )
    label: Literal["spam", "ham"] = Field(description="The right verdict")
    id: str | None = Field(
        None,
        min_length=1,
        max_length=feedback_store.MAX_FIELD,
        pattern=r"\S",
        description="Stored once: a repeated id is not stored",
    )
    source: str | None = Field(
        None,
        min_length=1,
        max_length=feedback_store.MAX_FIELD,
        pattern=r"\S",
        description="Where it was reported, e.g. a client name",
    )


def add_routes(
    app: FastAPI,
    store: feedback_store.Store,
    auth: Auth,
    verdict: Verdict,
    writers: anyio.CapacityLimiter,
    invalid: Any,
) -> None:
    """``writers`` bounds the reports scored and written at once (in worker threads)."""
    denied = {
        401: {"description": "No token, or an unknown or revoked one"},
        403: {"description": "The token lacks the feedback scope"},
    }

    reporting = auth.reporter()

    def store_report(request: FeedbackRequest, reporter: str) -> tuple[feedback_store.Record, bool]:
        try:
            rec = feedback_store.record(
                request.text, request.label, request.id, request.source, reporter=reporter
            )
        except feedback_store.Invalid as exc:
            error = {"type": "value_error", "loc": ("body", exc.field), "msg": str(exc)}
            raise RequestValidationError([error]) from None
        score, version = verdict(rec.text)
        return store.add(dataclasses.replace(rec, score=score, model_version=version))

    @app.post(
        "/feedback",
        status_code=201,
        response_model=FeedbackRecord,
        responses={
            200: {"model": FeedbackRecord, "description": "Already stored"},
            **denied,
            429: {"description": "The reporter is over its rate limit (see Retry-After)"},
            **invalid,
        },
        tags=["feedback"],
    )
    async def post_feedback(
        request: FeedbackRequest, response: Response, token: Annotated[Token, Depends(reporting)]
    ) -> FeedbackRecord:
        """Store a reported verdict durably (on disk before the answer)."""
        rec, stored = await anyio.to_thread.run_sync(
            store_report, request, token.name, limiter=writers
        )
        if not stored:
            response.status_code = 200
        return FeedbackRecord(**dataclasses.asdict(rec))

    @app.get(
        "/feedback/stats",
        response_model=FeedbackStats,
        responses=denied,
        tags=["feedback"],
        dependencies=[Depends(auth.need("feedback"))],
    )
    async def feedback_stats() -> FeedbackStats:
        """How many reported verdicts are stored, by label, and the lines left out."""
        return FeedbackStats(**await anyio.to_thread.run_sync(store.stats, limiter=writers))
