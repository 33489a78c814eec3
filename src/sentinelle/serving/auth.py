"""Who may call which route: bearer tokens with scopes, and per-reporter rate limits.

``Auth.need(scope)`` is a FastAPI dependency: no token or an unknown/revoked one -> 401 with
``WWW-Authenticate: Bearer``; a token without the scope -> 403; both with a JSON ``detail``
naming the reason (never the secret). It returns the token (its name is the reporter).
A secret verified since the token file last changed costs a SHA-256 and a ``stat``; a new
one costs one scrypt derivation, run in a worker thread, never on the event loop.
"""

import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sentinelle.errors import UserError
from sentinelle.serving.tokens import Token, TokenFileError, Verifier

__all__ = ["Auth", "Rate", "RateLimiter", "parse_rate"]

PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}

bearer = HTTPBearer(
    auto_error=False,
    description="A token made by `sentinelle tokens add` (its secret, shown once)",
)


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    def __str__(self) -> str:
        unit = next(k for k, v in PERIODS.items() if v == self.seconds)
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate:
    """``"30/minute"`` -> ``Rate(30, 60.0)``; also ``second`` and ``hour``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour)\s*", text)
    if not match or int(match.group(1)) < 1:
        raise UserError(
            f"--feedback-rate {text!r} is invalid: give N/second, N/minute or N/hour, N >= 1"
        )
    return Rate(int(match.group(1)), PERIODS[match.group(2)])


class RateLimiter:
    """A token bucket per key: ``burst`` at once, then ``rate.count`` per ``rate.seconds``."""

    def __init__(self, rate: Rate, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """0 if ``key`` may go now (one token taken), else the seconds until it may."""
        per_second = self.rate.count / self.rate.seconds
        with self._lock:
            now = self.clock()
            tokens, when = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / per_second


def _unauthorized(reason: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, reason, headers={"WWW-Authenticate": challenge})


class Auth:
    """The token check of one app; ``verifier`` None: no token file (nothing authenticates)."""

    def __init__(self, verifier: Verifier | None, limiter: RateLimiter | None = None) -> None:
        self.verifier, self.limiter = verifier, limiter

    async def token(self, credentials: HTTPAuthorizationCredentials | None) -> Token:
        if self.verifier is None:
            raise _unauthorized("this server has no token file (sentinelle serve --tokens)")
        if credentials is None:
            raise _unauthorized("no token: send the header Authorization: Bearer <token>")
        secret = credentials.credentials
        try:
            token = self.verifier.cached(secret)
            if token is None:
                token = await anyio.to_thread.run_sync(self.verifier.verify, secret)
        except TokenFileError as exc:
            raise HTTPException(503, f"the token file cannot be used: {exc}") from None
        if token is None:
            raise _unauthorized("the token is unknown or revoked", "invalid_token")
        return token

    def need(self, scope: str) -> Callable[..., Awaitable[Token]]:
        """A dependency: the caller's token, which must allow ``scope``."""

        async def check(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> Token:
            token = await self.token(credentials)
            if not token.allows(scope):
                raise HTTPException(
                    403,
                    f"token {token.name!r} lacks the {scope} scope "
                    f"(it has: {', '.join(token.scopes)})",
                    headers={
                        "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'
                    },
                )
            return token

        return check

    def reporter(self) -> Callable[..., Awaitable[Token]]:
        """A dependency: a ``feedback`` token within its rate limit (429 with Retry-After)."""
        need = self.need("feedback")

        async def check(token: Annotated[Token, Depends(need)]) -> Token:
            wait = self.limiter.take(token.name) if self.limiter is not None else 0.0
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise HTTPException(
                    429,
                    f"reporter {token.name!r} is over its rate limit "
                    f"({self.limiter.rate} after a burst of {self.limiter.burst}); "
                    f"retry in {seconds} s",
                    headers={"Retry-After": str(seconds)},
                )
            return token

        return check
