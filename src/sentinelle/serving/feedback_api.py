"""The feedback endpoints of the HTTP API (``sentinelle serve --feedback FILE``).

POST /feedback        {"text", "label": "spam"|"ham", "id", "source"}: 201 with the stored
                      record once it is on disk; 200 with the stored one if its id was
                      stored before
GET  /feedback/stats  records stored, by label
"""

from typing import Annotated, Any, Literal

from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sentinelle import feedback


class FeedbackRecord(BaseModel):
    id: str | None
    label: Literal["spam", "ham"]
    source: str | None
    text: str


class FeedbackStats(BaseModel):
    total: int
    by_label: dict[str, int]


def add_routes(app: FastAPI, store: feedback.Store, text_type: Any, invalid: Any) -> None:
    Short = Annotated[
        str,
        StringConstraints(min_length=1, max_length=feedback.MAX_FIELD, pattern=r"\S"),
    ]

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"text": "Your parcel is waiting, pay 1.99 at ...", "label": "spam"}]
            },
        )
        text: text_type
        label: Literal["spam", "ham"] = Field(description="The right verdict")
        id: Short | None = Field(None, description="Stored once: a repeated id is not stored")
        source: Short | None = Field(None, description="Who reported it, e.g. a client name")

    @app.post(
        "/feedback",
        status_code=201,
        response_model=FeedbackRecord,
        responses={200: {"model": FeedbackRecord, "description": "Already stored"}, **invalid},
        tags=["feedback"],
    )
    def post_feedback(request: FeedbackRequest, response: Response) -> FeedbackRecord:
        """Store a reported verdict durably (on disk before the answer)."""
        rec, stored = store.add(
            feedback.Record(request.text, request.label, request.id, request.source)
        )
        if not stored:
            response.status_code = 200
        return FeedbackRecord(id=rec.id, label=rec.label, source=rec.source, text=rec.text)

    @app.get("/feedback/stats", response_model=FeedbackStats, tags=["feedback"])
    def feedback_stats() -> FeedbackStats:
        """How many reported verdicts are stored, by label."""
        return FeedbackStats(**store.stats())
