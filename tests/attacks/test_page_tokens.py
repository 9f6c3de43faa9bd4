"""Attack: forge a `page_token` for `GET /v1/orchestrations`.

The token carried Temporal's page token with an unkeyed checksum, so anyone could make
one around any bytes; Temporal's visibility store choked on them and the API retried it
for about 5 s, then answered 503. Tokens are now authenticated with a key: a forged or
tampered one is a 400 at once, and real ones still page, on every replica that shares
the key.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest

from tests.api.conftest import APIFactory, APIHarness, serve_api
from tests.api.test_auth import auth, keys_json
from tests.waiting import eventually


def _old_scheme_token(raw: bytes) -> str:
    """A token as the API used to check them: base64 of the bytes, a dot, an unkeyed checksum."""
    check = hashlib.sha256(b"orchestrations-page-token:" + raw).hexdigest()[:16]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + check


async def _start_runs(api: APIHarness, count: int) -> set[str]:
    run_ids = set()
    for i in range(count):
        created = await api.http.post("/v1/orchestrations", json={"input": f"page {i}", "model": "m-pages"})
        assert created.status_code == 202, created.text
        run_ids.add(created.json()["id"])
    return run_ids


async def _first_page_token(http: httpx.AsyncClient) -> str:
    async def token() -> str | None:
        page = await http.get("/v1/orchestrations", params={"limit": 1})
        assert page.status_code == 200, page.text
        next_token: str | None = page.json()["next_page_token"]
        return next_token

    return await eventually(token, "a listing with a next page", interval=0.2)


async def _walk(first: httpx.AsyncClient, then: httpx.AsyncClient, wanted: set[str]) -> list[str]:
    """Run ids, newest first, two a page: the first page from `first`, the rest from `then`."""
    listed: list[str] = []
    token: str | None = None
    http = first
    for _ in range(50):
        params: dict[str, Any] = {"limit": 2} | ({"page_token": token} if token else {})
        page = await http.get("/v1/orchestrations", params=params)
        assert page.status_code == 200, page.text
        listed += [run["id"] for run in page.json()["data"]]
        token, http = page.json()["next_page_token"], then
        if not token or wanted <= set(listed):
            return listed
    raise AssertionError("pagination did not end")


async def test_a_forged_page_token_is_400_without_asking_temporal(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        for raw in (b"\xff" * 40, b'{"CloseTime": "garbage", "RunID": 7}', b"\x00"):
            forged = await api.http.get("/v1/orchestrations", params={"page_token": _old_scheme_token(raw)})
            assert forged.status_code == 400, forged.text
            assert forged.json()["error"]["code"] == "bad_page_token", forged.text


async def test_a_tampered_page_token_is_400(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        await _start_runs(api, 2)
        token = await _first_page_token(api.http)
        encoded, _, tag = token.partition(".")
        flipped = "A" if encoded[0] != "A" else "B"
        for tampered in (flipped + encoded[1:] + "." + tag, encoded + "." + tag[::-1], encoded, token + "x"):
            answer = await api.http.get("/v1/orchestrations", params={"page_token": tampered})
            assert answer.status_code == 400, (tampered, answer.text)
            assert answer.json()["error"]["code"] == "bad_page_token", answer.text
        assert (await api.http.get("/v1/orchestrations", params={"page_token": token})).status_code == 200


async def test_real_page_tokens_page_through_every_run(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        started = await _start_runs(api, 3)

        async def all_listed() -> list[str] | None:  # visibility is eventually consistent
            listed = await _walk(api.http, api.http, started)
            return listed if started <= set(listed) else None

        listed = await eventually(all_listed, "paging lists every run", interval=0.2)
        assert len(listed) == len(set(listed)), "no run on two pages"


@pytest.mark.parametrize(
    ("settings", "headers"),
    [({"page_token_key": "a-key-every-replica-has"}, {}), ({"api_keys": keys_json()}, auth("root"))],
    ids=["ORCH_PAGE_TOKEN_KEY", "derived-from-ORCH_API_KEYS"],
)
async def test_replicas_with_a_shared_key_accept_each_others_tokens(
    api_stack: APIFactory, settings: dict[str, str], headers: dict[str, str]
) -> None:
    async with api_stack(**settings) as api:
        api.http.headers.update(headers)
        started = await _start_runs(api, 3)
        target = api.worker.client.service_client.config.target_host
        async with serve_api(api.app.state.settings, temporal=target) as (replica, _):
            replica.headers.update(headers)

            async def all_listed() -> list[str] | None:
                listed = await _walk(api.http, replica, started)
                return listed if started <= set(listed) else None

            await eventually(all_listed, "paging across replicas lists every run", interval=0.2)


async def test_without_a_shared_key_another_process_says_why_it_refuses_a_token(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        await _start_runs(api, 2)
        token = await _first_page_token(api.http)
        target = api.worker.client.service_client.config.target_host
        async with serve_api(api.app.state.settings, temporal=target) as (replica, _):
            refused = await replica.get("/v1/orchestrations", params={"page_token": token})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_page_token", refused.text
        assert "another API process" in refused.json()["error"]["message"]
        assert "ORCH_PAGE_TOKEN_KEY" in refused.json()["error"]["message"]
