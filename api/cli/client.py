"""A small synchronous client of the HTTP API, used by the `orch` commands."""

from __future__ import annotations

from typing import Any

import httpx


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

    def decide(self, run_id: str, call_id: str, decision: str, reason: str | None, approver: str) -> dict[str, Any]:
        body = {"tool_call_id": call_id, "decision": decision, "reason": reason, "approver": approver}
        return self._call("POST", f"/v1/orchestrations/{run_id}/approvals", json=body)

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/orchestrations/{run_id}/cancel")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise CLIError(
                f"cannot reach the API at {self._base_url} ({type(err).__name__}); is `orch dev` running?"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise CLIError(f"{response.status_code}: {error.get('message') or response.text[:200]}")
        if not isinstance(body, dict):
            raise CLIError(f"unexpected answer from {path}: {response.text[:200]}")
        return body
