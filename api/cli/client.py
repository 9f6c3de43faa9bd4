"""A small synchronous client of the HTTP API, used by the `orch` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from workflows.messages import FINAL_EVENT_TYPES

RECONNECTS = 5


class CLIError(Exception):
    """A failure to show the user as one line (no traceback)."""


class OrchestrationsClient:
    """Calls the API at `base_url`; every error becomes a CLIError with the API's message."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self._base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self._base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/orchestrations", json=body)

    def get(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/orchestrations/{run_id}")

    def list(self, status: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._call("GET", "/v1/orchestrations", params=params)

    def decide(
        self,
        run_id: str,
        call_id: str,
        decision: str,
        reason: str | None,
        approver: str,
        approval_hash: str | None = None,
    ) -> dict[str, Any]:
        """Decide a pending call; with `approval_hash` (the call as shown to the person) the
        decision applies only if the call is still exactly that."""
        body = {"tool_call_id": call_id, "decision": decision, "reason": reason, "approver": approver}
        if approval_hash:
            body["approval_hash"] = approval_hash
        return self._call("POST", f"/v1/orchestrations/{run_id}/approvals", json=body)

    def answer(
        self,
        run_id: str,
        input_id: str,
        action: str,
        content: dict[str, Any] | None,
        answerer: str,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Answer what an MCP server asked (one of the run's `pending_inputs`): `accept` (with
        `content` for an elicitation's form), `decline` or `cancel`; the run's status."""
        body: dict[str, Any] = {"input_id": input_id, "action": action, "answerer": answerer, "reason": reason}
        if content is not None:
            body["content"] = content
        return self._call("POST", f"/v1/orchestrations/{run_id}/inputs", json=body)

    def events(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The run's events (GET .../events, Server-Sent Events) until its final one; a dropped
        connection is resumed with Last-Event-ID, so nothing is missed or repeated."""
        last_id = 0
        failures = 0
        while True:
            try:
                with self._http.stream(
                    "GET",
                    f"/v1/orchestrations/{run_id}/events",
                    headers={"Last-Event-ID": str(last_id)},
                    timeout=httpx.Timeout(30.0, read=60.0),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._raise_for_error(response)
                    for event in _server_sent_events(response.iter_lines()):
                        failures = 0
                        last_id = event["id"]
                        yield event
                        if event["type"] in FINAL_EVENT_TYPES:  # StrEnum members equal their strings
                            return
                    # Closed by the server before the run ended (ORCH_EVENTS_STREAM_SECONDS): resume.
            except httpx.HTTPError as err:
                failures += 1
                if failures > RECONNECTS:
                    raise CLIError(f"lost the event stream of {run_id} ({type(err).__name__})") from None

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/orchestrations/{run_id}/cancel")

    # Assistants (/v1/assistants) and MCP servers (/v1/mcp/servers). PATCH bodies are JSON
    # merge patches: omitted fields stay, null resets.

    def assistants(self) -> dict[str, Any]:
        return self._call("GET", "/v1/assistants")

    def assistant(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/assistants/{_segment(name)}")

    def create_assistant(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/assistants", json=body)

    def update_assistant(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"/v1/assistants/{_segment(name)}", json=patch)

    def delete_assistant(self, name: str) -> None:
        self._call("DELETE", f"/v1/assistants/{_segment(name)}", empty=True)

    def servers(self) -> dict[str, Any]:
        return self._call("GET", "/v1/mcp/servers")

    def server(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/mcp/servers/{_segment(name)}")

    def add_server(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/mcp/servers", json=body)

    def update_server(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"/v1/mcp/servers/{_segment(name)}", json=patch)

    def remove_server(self, name: str) -> None:
        self._call("DELETE", f"/v1/mcp/servers/{_segment(name)}", empty=True)

    def connect_server(self, name: str) -> dict[str, Any]:
        """Start connecting this API key to a server with OAuth: `authorization_url` to open."""
        return self._call("GET", f"/v1/mcp/servers/{_segment(name)}/oauth/connect")

    def disconnect_server(self, name: str) -> None:
        self._call("DELETE", f"/v1/mcp/servers/{_segment(name)}/oauth/connect", empty=True)

    def _call(self, method: str, path: str, *, empty: bool = False, **kwargs: Any) -> dict[str, Any]:
        """The API's JSON object answer (`empty`: the answer has no body, e.g. 204)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise CLIError(
                f"cannot reach the API at {self._base_url} ({type(err).__name__}); is `orch dev` running?"
            ) from None
        self._raise_for_error(response)
        if empty:
            return {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CLIError(f"unexpected answer from {path}: {response.text[:200]}")
        return body

    @staticmethod
    def _raise_for_error(response: httpx.Response) -> None:
        """A CLIError with the API's message for an error answer."""
        if response.status_code < 400:
            return
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise CLIError(f"{response.status_code}: {error.get('message') or response.text[:200]}")


def _segment(name: str) -> str:
    """`name` as one path segment (a `/` or `?` in it cannot reach another route)."""
    return quote(name, safe="")


def _server_sent_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The `data` of each event of an SSE stream (comments and keep-alives skipped)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].strip())
