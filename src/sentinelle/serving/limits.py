"""What one request may cost the server: its body, its headers and its scoring work.

- ``BodyLimit`` (ASGI middleware) refuses (431) headers over their limit, and counts the
  bytes of the body as the app reads them, so a chunked body or one whose
  ``Content-Length`` lies is cut at the limit: a 413, and the connection is closed without
  reading the rest. A declared length over the limit gets the 413 before any byte of the
  body is read.
- ``HeaderLimitProtocol`` is uvicorn's h11 protocol answering 431 (not uvicorn's 400) when
  the request line and headers exceed ``h11_max_incomplete_event_size``.
- ``Budget`` refuses (413) a scoring request over its work budget before any scoring:
  the characters of one request, and those characters times ``explain`` K.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BodyLimit", "Budget", "HeaderLimitProtocol", "OverBudget"]

H11_DEFAULT = 16 * 1024  # h11's own limit of the request line and headers


def _json(status: int, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    content = json.dumps(body, separators=(",", ":")).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": content}


def _header_refusal(limit: int) -> dict[str, Any]:
    return {
        "detail": f"request line and headers over {limit} bytes",
        "limit": "max_header_bytes",
        "allowed": limit,
    }


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse (413) a request body over ``max_bytes``, counted as it arrives, and (431)
    a request line and headers over ``max_header_bytes`` (h11 checks its limit only while
    they are incomplete: headers that arrive whole are counted here)."""

    def __init__(self, app: Any, max_bytes: int, max_header_bytes: int) -> None:
        self.app, self.max_bytes, self.max_header_bytes = app, max_bytes, max_header_bytes

    def _refusal(self, seen: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        return _json(
            413,
            {
                "detail": f"request body over {self.max_bytes} bytes",
                "limit": "max_body_bytes",
                "allowed": self.max_bytes,
                "value": seen,
            },
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
        head += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > self.max_header_bytes:
            for message in _json(431, _header_refusal(self.max_header_bytes)):
                await send(message)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                for message in self._refusal(int(value)):
                    await send(message)
                return
        received = 0
        over = False
        state = {"started": False, "replaced": False}

        async def counted() -> Any:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Any) -> None:
            # The app answers whatever it makes of a body cut short (FastAPI: a 400); the
            # client gets the 413 instead.
            if over and not state["started"]:
                state["started"] = state["replaced"] = True
                for refusal in self._refusal(received):
                    await send(refusal)
                return
            if state["replaced"]:
                return
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _BodyTooLarge:
            if not state["started"]:
                for refusal in self._refusal(received):
                    await send(refusal)


class _Connection(h11.Connection):
    """An h11 connection that remembers the status its last protocol error suggests."""

    status_hint = 400

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.status_hint = exc.error_status_hint
            raise


class HeaderLimitProtocol(H11Protocol):
    """uvicorn's h11 protocol; headers over the limit get a 431 with a JSON body."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.conn = _Connection(h11.SERVER, config.h11_max_incomplete_event_size or H11_DEFAULT)

    def send_400_response(self, msg: str) -> None:
        if getattr(self.conn, "status_hint", 400) != 431:
            super().send_400_response(msg)
            return
        limit = self.config.h11_max_incomplete_event_size or H11_DEFAULT
        body = json.dumps(_header_refusal(limit), separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(
                status_code=431, headers=headers, reason=b"Request Header Fields Too Large"
            ),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


class OverBudget(Exception):
    """A request over a work budget: answered 413 naming the limit and the value."""

    def __init__(self, limit: str, allowed: int, value: int, what: str) -> None:
        super().__init__(f"{what}: {value} is over {limit} = {allowed}")
        self.limit, self.allowed, self.value = limit, allowed, value

    def body(self) -> dict[str, Any]:
        return {
            "detail": str(self),
            "limit": self.limit,
            "allowed": self.allowed,
            "value": self.value,
        }


@dataclass(frozen=True)
class Budget:
    """The work one scoring request may ask for."""

    max_batch_chars: int  # characters of all the texts of one request
    max_explain_work: int  # those characters times explain's K

    def check(self, texts: list[str], explain: int | None) -> None:
        chars = sum(map(len, texts))
        if chars > self.max_batch_chars:
            raise OverBudget(
                "max_batch_chars", self.max_batch_chars, chars, "characters in the request"
            )
        if explain is not None and chars * explain > self.max_explain_work:
            raise OverBudget(
                "max_explain_work",
                self.max_explain_work,
                chars * explain,
                f"characters x explain ({chars} x {explain})",
            )
