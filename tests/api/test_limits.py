"""Input limits: body and prompt size (413) and webhook targets inside the network (422)."""

from __future__ import annotations

import pytest

from tests.api.conftest import APIFactory


async def test_a_body_over_the_limit_is_refused_declared_or_streamed(api_stack: APIFactory) -> None:
    async with api_stack(max_request_bytes=4096) as api:
        declared = await api.http.post(
            "/v1/orchestrations", content=b"x" * 5000, headers={"content-type": "application/json"}
        )

        async def chunks():
            for _ in range(10):
                yield b" " * 1000

        streamed = await api.http.post(
            "/v1/orchestrations", content=chunks(), headers={"content-type": "application/json"}
        )
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"


async def test_a_prompt_over_the_limit_is_refused(api_stack: APIFactory) -> None:
    async with api_stack(max_prompt_bytes=2048) as api:
        response = await api.http.post("/v1/orchestrations", json={"input": "y" * 3000})
        small = await api.http.post("/v1/orchestrations", json={"input": "y" * 100, "model": "m-limits"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "prompt_too_large"
    assert small.status_code == 202


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_webhook_urls_inside_the_network_are_refused(api_stack: APIFactory, url: str) -> None:
    async with api_stack() as api:
        response = await api.http.post("/v1/orchestrations", json={"input": "x", "webhook_url": url})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "webhook_url_refused"


async def test_allowed_hosts_may_receive_webhooks(api_stack: APIFactory) -> None:
    async with api_stack(webhook_allowed_hosts="127.0.0.1") as api:
        response = await api.http.post(
            "/v1/orchestrations", json={"input": "x", "model": "m-allowed", "webhook_url": "http://127.0.0.1:9/hook"}
        )
    assert response.status_code == 202, response.text
