"""The HTTP API (``sentinelle serve``): the scorer it loads, its routes, tokens and limits."""

__all__ = [
    "api",
    "auth",
    "docs",
    "explained",
    "feedback_api",
    "limits",
    "observability",
    "page",
    "rows",
    "scorer",
    "tokens",
]
