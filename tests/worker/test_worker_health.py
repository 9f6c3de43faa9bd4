"""The worker's health endpoint (ORCH_HEALTH_PORT) on a real `python -m worker`: alive, and
ready only while it polls, Temporal answers and every enabled MCP server answers."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import free_port
from tests.waiting import eventually


async def _probe(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        return await http.get(path)


async def test_ready_while_polling_with_every_mcp_server_answering(
    worker_process: Callable[..., Any], call_log: CallLog
) -> None:
    # A server with OAuth per key is not checked: each key's session uses that key's token.
    per_key = {"url": "http://127.0.0.1:1/mcp", "auth": {"type": "oauth_per_key"}}
    process, _ = worker_process({"toolbox": toolbox_stdio(call_log), "personal": per_key})
    port = free_port()
    process.env |= {"ORCH_HEALTH_PORT": str(port), "ORCH_HEALTH_HOST": "127.0.0.1"}
    await process.start()

    async def ready() -> dict | None:
        answer = await _probe(port, "/readyz")
        return answer.json() if answer.status_code == 200 else None

    report = await eventually(ready, "the worker is ready")
    assert report == {"status": "ready", "polling": True, "temporal": "ok", "mcp": {"toolbox": "ok"}}
    assert (await _probe(port, "/healthz")).json() == {"status": "ok"}
    assert await process.stop(signal.SIGTERM) == 0


async def test_an_mcp_server_that_does_not_answer_makes_it_not_ready_but_alive(
    worker_process: Callable[..., Any], call_log: CallLog
) -> None:
    down = {"url": "http://127.0.0.1:1/mcp", "transport": "streamable_http"}
    process, _ = worker_process({"toolbox": toolbox_stdio(call_log), "down": down})
    port = free_port()
    process.env |= {"ORCH_HEALTH_PORT": str(port), "ORCH_HEALTH_HOST": "127.0.0.1"}
    await process.start()

    async def answered() -> httpx.Response | None:
        try:
            return await _probe(port, "/readyz")
        except httpx.TransportError:
            return None

    answer = await eventually(answered, "the health endpoint answers")
    report = answer.json()
    assert answer.status_code == 503 and report["status"] == "not ready", report
    assert report["mcp"]["toolbox"] == "ok" and report["mcp"]["down"] != "ok" and report["temporal"] == "ok"
    assert (await _probe(port, "/healthz")).status_code == 200
    assert await process.stop(signal.SIGTERM) == 0
