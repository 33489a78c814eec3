"""What ``?explain=K`` adds to a prediction: the response schema (the decision folded onto
the message's words) and the 422 of a model that cannot be explained
(``modeling.explanations`` computes it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sentinelle.modeling.explanations import MAX_EXPLAIN, ExplanationUnavailable

# The query parameter of both predict routes.
Explain = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_EXPLAIN,
        description=f"List the 1 to {MAX_EXPLAIN} words that push most each way",
    ),
]


class Contribution(BaseModel):
    text: str = Field(description="The word as it is in the message: text == message[start:end]")
    start: int = Field(description="Its first character in the message (a code point offset)")
    end: int = Field(description="One past its last character (a code point offset)")
    contribution: float = Field(
        description="Its share of the decision: the contributions (TF-IDF value x weight) of "
        "every word and character n-gram over it"
    )


class Explanation(BaseModel):
    spam: list[Contribution] = Field(description="The words that push most towards spam, first")
    ham: list[Contribution] = Field(description="The words that push most towards ham, first")
    intercept: float
    decision: float = Field(description="intercept + the words listed + rest")
    rest: float = Field(description="The words not listed, and unplaced")
    unplaced: float = Field(
        description="The part of the decision on no word of the message (part of rest; 0 for "
        "the default preprocessing)"
    )


def install(app: FastAPI, response: type[JSONResponse]) -> None:
    """Answer a model that cannot be explained with a 422 of one line (in ``response``)."""

    @app.exception_handler(ExplanationUnavailable)
    async def _unexplainable(request: Request, exc: Exception) -> Any:
        detail = [{"loc": ["query", "explain"], "msg": str(exc), "type": "explain_unavailable"}]
        return response({"detail": detail}, status_code=422)
