"""Every request's body bounded before any route reads it: its size, and the nesting of a
JSON body (deeply nested JSON is refused before a parser recurses into it)."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A `receive` that yields `messages` first, then defers to `then` (e.g. for disconnects)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


MAX_JSON_DEPTH = 64
"""Arrays and objects nested deeper than this in a request body are refused (400): deeper data
breaks serialisation further in (and no request of this API needs it)."""
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in `body` (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', body)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BodySizeLimit:
    """Answers 413 for a request body over `max_bytes`, declared or streamed, and 400 for one
    nested deeper than MAX_JSON_DEPTH, before any handler."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        # Read the body first (at most max_bytes of it), then hand it to the app: a body that
        # grows past the limit is refused here, not half-parsed by a handler.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth(body) > MAX_JSON_DEPTH:
            await self._reject(send, 400, "json_too_deep", f"request body nested deeper than {MAX_JSON_DEPTH} levels")
            return
        body_message: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([body_message], receive), send)

    async def _reject(
        self, send: Send, status: int = 413, code: str = "payload_too_large", message: str | None = None
    ) -> None:
        body = json.dumps(
            {"error": {"code": code, "message": message or f"request body over {self.max_bytes} bytes"}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
