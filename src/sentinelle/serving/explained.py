"""What ``?explain=K`` adds to a prediction: the response schema and the 422 of a model that
cannot be explained (``modeling.explanations`` computes it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sentinelle.modeling.explanations import MAX_EXPLAIN, ExplanationUnavailable

# The query parameter of both predict routes.
Explain = Annotated[
    int | None,
    Query(ge=1, le=MAX_EXPLAIN, description=f"List the 1 to {MAX_EXPLAIN} top n-grams each way"),
]


class Contribution(BaseModel):
    ngram: str = Field(description="The feature as the model names it (char n-grams: padded)")
    kind: str = Field(description="word or char (char_wb n-gram, inside one token)")
    contribution: float = Field(description="TF-IDF value x the linear model's weight")
    spans: list[list[int]] = Field(
        description="[start, end) code-point offsets of its places in the raw message"
    )


class Explanation(BaseModel):
    spam: list[Contribution] = Field(description="Most spam-ward first")
    ham: list[Contribution] = Field(description="Most ham-ward first")
    intercept: float
    decision: float = Field(description="intercept + every contribution (listed or in rest)")
    rest: float = Field(description="Sum of the contributions not listed")


def install(app: FastAPI, response: type[JSONResponse]) -> None:
    """Answer a model that cannot be explained with a 422 of one line (in ``response``)."""

    @app.exception_handler(ExplanationUnavailable)
    async def _unexplainable(request: Request, exc: Exception) -> Any:
        detail = [{"loc": ["query", "explain"], "msg": str(exc), "type": "explain_unavailable"}]
        return response({"detail": detail}, status_code=422)
