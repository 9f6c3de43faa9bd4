"""Attack: reach a keys-off API from a web page, through the browser of the person running it.

With no ORCH_API_KEYS the API answers only on a loopback socket, but a page can still get
there: by DNS rebinding (evil.example resolves to 127.0.0.1 after the page has loaded, so
the page reads and writes "its own" origin, with `Host: evil.example`), or by a plain
cross-site POST to http://127.0.0.1:8000 (a form, or `fetch` in no-cors mode). Either
used to start runs and approve tool calls as anyone. Keys off, only loopback names are
served and cross-site writes are refused; with keys on, the bearer key guards both.
"""

from __future__ import annotations

import base64
import os

import httpx

from tests.api.conftest import APIFactory, APIHarness, serve_api
from tests.api.test_auth import auth, keys_json
from tests.orch_cli import run_orch
from worker.settings import Settings

UNKNOWN_RUN_CANCEL = "/v1/orchestrations/orch-unknown/cancel"
"""A write that changes nothing: 404 once past the guard, 403 when refused."""


def _port(api: APIHarness) -> int:
    return httpx.URL(api.base_url).port or 80


async def test_without_keys_a_host_that_is_not_loopback_is_refused(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        port = _port(api)
        for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}", "127.0.0.1.nip.io",
                     f"0.0.0.0:{port}", f"evil.example@127.0.0.1:{port}"):  # fmt: skip
            listed = await api.http.get("/v1/orchestrations", headers={"Host": host})
            assert listed.status_code == 403, (host, listed.text)
            assert listed.json()["error"]["code"] == "host_not_loopback", listed.text
            started = await api.http.post("/v1/orchestrations", json={"input": "x"}, headers={"Host": host})
            assert started.status_code == 403, (host, started.text)
        message = listed.json()["error"]["message"]
        assert "no API keys are configured (ORCH_API_KEYS)" in message and "'evil.example@127.0.0.1" in message

        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"[::1]:{port}", f"127.3.2.1:{port}",
                     f"app.localhost:{port}", f"LOCALHOST:{port}"):  # fmt: skip
            listed = await api.http.get("/v1/orchestrations", headers={"Host": host})
            assert listed.status_code == 200, (host, listed.text)

        # Probes stay open; a webhook is guarded by its signature, whatever the Host.
        assert (await api.http.get("/healthz", headers={"Host": "evil.example"})).status_code == 200
        hook = await api.http.post(
            "/v1/webhooks/approvals",
            json={"orchestration_id": "orch-x", "tool_call_id": "t", "decision": "approve"},
            headers={
                "Host": "hooks.example",
                "webhook-id": "m1",
                "webhook-timestamp": "1",
                "webhook-signature": "v1,x",
            },
        )
        assert hook.status_code == 401 and hook.json()["error"]["code"] == "bad_signature", hook.text


async def test_without_keys_cross_site_writes_are_refused(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},  # a sandboxed iframe, a file:// page
            {"Origin": "http://127.0.0.1.evil.example:8000"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            refused = await api.http.post(UNKNOWN_RUN_CANCEL, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["error"]["code"] == "cross_site_request", refused.text
            started = await api.http.post("/v1/orchestrations", json={"input": "x"}, headers=headers)
            assert started.status_code == 403, (headers, started.text)
        assert "cross-site" in refused.json()["error"]["message"]

        # Reads are not writes (and a browser does not let the other site read the answer).
        read = await api.http.get("/v1/orchestrations", headers={"Origin": "https://evil.example"})
        assert read.status_code == 200, read.text
        # Loopback pages (a local dev UI), same-site requests and clients that are no browser are served.
        for headers in (
            {"Origin": "http://localhost:3000"},
            {"Origin": "http://127.0.0.1:8233", "Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "same-origin"},
            {},
        ):
            passed = await api.http.post(UNKNOWN_RUN_CANCEL, headers=headers)
            assert passed.status_code == 404, (headers, passed.text)
        started = await api.http.post(
            "/v1/orchestrations", json={"input": "hi", "model": "m-local"}, headers={"Origin": "http://localhost:5173"}
        )
        assert started.status_code == 202, started.text


async def test_without_keys_the_temporal_ui_origin_may_use_the_codec_only() -> None:
    key = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    ui = "https://temporal.example.com"
    settings = Settings(temporal_ui_url=f"{ui}/", encryption_key=key)
    async with serve_api(settings) as (http, _):
        for headers in ({"Origin": ui}, {"Origin": ui, "Sec-Fetch-Site": "cross-site"}):
            decoded = await http.post("/codec/decode", json={"payloads": []}, headers=headers)
            assert decoded.status_code == 200, decoded.text
            assert decoded.headers["access-control-allow-origin"] == ui
        evil = await http.post("/codec/decode", json={"payloads": []}, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"]["code"] == "cross_site_request", evil.text
        # The UI calls the codec and nothing else: its origin does not start or cancel runs.
        cancel = await http.post(UNKNOWN_RUN_CANCEL, headers={"Origin": ui})
        assert cancel.status_code == 403 and cancel.json()["error"]["code"] == "cross_site_request", cancel.text


async def test_with_keys_any_host_and_origin_is_served_to_a_valid_key(api_stack: APIFactory) -> None:
    """A browser never sends a bearer key by itself, so the key is the protection."""
    async with api_stack(api_keys=keys_json()) as api:
        public = {"Host": "orch.example.com", "Origin": "https://dashboard.example.com", "Sec-Fetch-Site": "cross-site"}
        listed = await api.http.get("/v1/orchestrations", headers=public | auth("root"))
        assert listed.status_code == 200, listed.text
        cancel = await api.http.post(UNKNOWN_RUN_CANCEL, headers=public | auth("root"))
        assert cancel.status_code == 404, cancel.text
        anonymous = await api.http.post(UNKNOWN_RUN_CANCEL, headers=public)
        assert anonymous.status_code == 401, anonymous.text


async def test_orch_reaches_a_keys_off_api_by_localhost_and_127_0_0_1(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        for base_url in (api.base_url, f"http://localhost:{_port(api)}"):
            code, _, stderr = await run_orch("list", "--api-url", base_url)
            assert code == 0, (base_url, stderr)


async def test_without_keys_a_request_a_proxy_forwards_from_another_machine_is_refused(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        for header, value in (("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "127.0.0.1, 203.0.113.9"),
                              ("Forwarded", 'for="[2001:db8::1]:4711"'), ("Forwarded", "for=unknown")):  # fmt: skip
            answer = await api.http.get("/v1/orchestrations", headers={header: value})
            assert answer.status_code == 403, (value, answer.text)
            assert answer.json()["error"]["code"] == "proxied_request"
        for header, value in (("X-Forwarded-For", "127.0.0.1"), ("Forwarded", 'for="[::1]:5000";proto=http')):
            assert (await api.http.get("/v1/orchestrations", headers={header: value})).status_code == 200, value
