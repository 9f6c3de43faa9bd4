"""Input limits of the API: request body size and nesting, prompt size, webhook targets
(SSRF), the caller's MCP scope."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activities.mcp_config import scope_allows
from activities.webhooks import literal_target_problem
from api.auth import Principal
from api.errors import APIError
from api.schemas import CreateOrchestration
from worker.settings import Settings


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


def check_run_request(body: CreateOrchestration, settings: Settings) -> None:
    """Refuse prompts over the size limit (413) and webhooks aimed inside the network (422)."""
    prompt: list[Any] = [body.input, body.instructions, [m.model_dump(mode="json") for m in body.messages or []]]
    size = len(json.dumps(prompt).encode())
    if size > settings.max_prompt_bytes:
        raise APIError(413, "prompt_too_large", f"prompt is {size} bytes; the limit is {settings.max_prompt_bytes}")
    if body.webhook_url is not None and body.webhook_url.host:
        problem = literal_target_problem(body.webhook_url.host, settings.webhook_hosts_allowed)
        if problem is not None:
            raise APIError(
                422,
                "webhook_url_refused",
                f"webhook_url refused: {problem} (allowed hosts: ORCH_WEBHOOK_ALLOWED_HOSTS)",
            )


def check_scope(body: CreateOrchestration, caller: Principal) -> None:
    """Refuse (403) a run that names an MCP server outside the caller's scope. Tools outside
    it are filtered out when the run starts, so the model is never offered them."""
    outside = [name for name in body.mcp_servers or [] if not scope_allows(caller.mcp_scopes, name)]
    if outside:
        raise APIError(403, "outside_scope", f"API key {caller.name!r} may not use MCP servers {outside}")
