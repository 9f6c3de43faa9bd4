"""A scripted OpenAI-compatible chat-completions server, served for real on loopback.

Each model name has its own script: a list of turns consumed one per request. A turn is
a reply (text and/or tool calls), an HTTP error, a raw body, or a callable that gets the
request JSON and returns a turn. Every request is recorded, so tests assert what the
model was shown (tools, tool messages, denial reasons).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 10
    completion_tokens: int = 5


@dataclass
class HTTPError:
    status: int
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RawBody:
    body: str
    status: int = 200


@dataclass
class Stall:
    """Hold the request open for `seconds`, or until the server stops (the client times out,
    the run is cancelled or its worker is killed meanwhile)."""

    seconds: float


@dataclass
class Drop:
    """Start a 200 answer, then cut the connection mid-body."""


Turn = Reply | HTTPError | RawBody | Stall | Drop | Callable[[dict[str, Any]], "Turn"]


def tool_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    """An OpenAI tool call; `arguments` may be a raw (even invalid) JSON string."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}


class ScriptedLLM:
    """The server and its scripts; `base_url` is what OPENAI_BASE_URL points at."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Turn]] = {}
        self.responders: dict[str, Callable[[dict[str, Any]], Turn]] = {}
        self.record_requests = True
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.port = _free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *turns: Turn) -> None:
        self.scripts[model] = list(turns)

    def respond(self, model: str, responder: Callable[[dict[str, Any]], Turn]) -> None:
        """Answer every request for `model` (once its script, if any, is used up) with `responder`."""
        self.responders[model] = responder

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("model") == model]

    async def start(self) -> None:
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._stopping.set()
            self._server.should_exit = True
            await self._task

    async def _handle(self, request: Request) -> Response:
        body = await request.json()
        if self.record_requests:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
        script = self.scripts.get(body.get("model"), [])
        responder = self.responders.get(body.get("model"))
        turn: Turn = script.pop(0) if script else responder(body) if responder else Reply(content="(script exhausted)")
        while callable(turn):
            turn = turn(body)
        if isinstance(turn, Stall):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), turn.seconds)
            return JSONResponse({"error": {"message": "stalled"}}, status_code=504)
        if isinstance(turn, Drop):

            async def cut_off() -> AsyncIterator[bytes]:
                yield b'{"choices": [{"message": '
                raise ConnectionAbortedError("scripted drop")

            return StreamingResponse(cut_off(), media_type="application/json")
        if isinstance(turn, HTTPError):
            return JSONResponse(
                {"error": {"message": turn.message, "type": "scripted"}},
                status_code=turn.status,
                headers=turn.headers,
            )
        if isinstance(turn, RawBody):
            return Response(turn.body, status_code=turn.status, media_type="application/json")
        message: dict[str, Any] = {"role": "assistant", "content": turn.content}
        if turn.tool_calls:
            message["tool_calls"] = turn.tool_calls
        return JSONResponse(
            {
                "id": f"chatcmpl-{id(body)}",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {"index": 0, "message": message, "finish_reason": "tool_calls" if turn.tool_calls else "stop"}
                ],
                "usage": {
                    "prompt_tokens": turn.prompt_tokens,
                    "completion_tokens": turn.completion_tokens,
                    "total_tokens": turn.prompt_tokens + turn.completion_tokens,
                },
            }
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


free_port = _free_port
