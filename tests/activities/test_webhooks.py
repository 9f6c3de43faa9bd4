"""Standard Webhooks signing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from activities.webhooks import WebhookVerificationError, sign, verify

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()


def test_signature_matches_the_spec_construction() -> None:
    body = b'{"type":"x"}'
    expected = base64.b64encode(hmac.new(b"0123456789abcdef", b"msg_1.1700000000." + body, hashlib.sha256).digest())
    assert sign(SECRET, "msg_1", 1700000000, body) == "v1," + expected.decode()


def _headers(secret: str, body: bytes, at: int, webhook_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(at),
        "webhook-signature": sign(secret, webhook_id, at, body),
    }


def test_verify_accepts_a_fresh_signature_among_several() -> None:
    now = int(time.time())
    headers = _headers(SECRET, b"{}", now)
    headers["webhook-signature"] = "v1,bm9wZQ== " + headers["webhook-signature"]
    assert verify(SECRET, headers, b"{}") == "msg_1"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.update({"webhook-signature": "v1,AAAA"}), "no valid v1 signature"),
        (lambda h: h.pop("webhook-id"), "missing"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "Unix time"),
    ],
)
def test_verify_rejects_bad_headers(mutate, message: str) -> None:
    headers = _headers(SECRET, b"{}", int(time.time()))
    mutate(headers)
    with pytest.raises(WebhookVerificationError, match=message):
        verify(SECRET, headers, b"{}")


def test_verify_rejects_stale_tampered_and_wrong_secret() -> None:
    now = int(time.time())
    with pytest.raises(WebhookVerificationError, match="5-minute window"):
        verify(SECRET, _headers(SECRET, b"{}", now - 301), b"{}")
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, _headers(SECRET, b"{}", now), b'{"tampered":1}')
    with pytest.raises(WebhookVerificationError):
        verify("another-secret", _headers(SECRET, b"{}", now), b"{}")


def test_plain_secrets_are_used_as_utf8_bytes() -> None:
    now = int(time.time())
    assert verify("plain secret", _headers("plain secret", b"{}", now), b"{}") == "msg_1"


def test_interoperates_with_the_standardwebhooks_reference_library() -> None:
    """Receivers using the reference library accept our signatures, and we accept theirs."""
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    body = b'{"type":"orchestration.completed","data":{}}'
    now = int(time.time())
    ours = {"webhook-id": "msg_x", "webhook-timestamp": str(now), "webhook-signature": sign(SECRET, "msg_x", now, body)}
    assert Webhook(SECRET).verify(body, ours) == {"type": "orchestration.completed", "data": {}}
    theirs = Webhook(SECRET).sign("msg_y", datetime.fromtimestamp(now, UTC), body.decode())
    headers = {"webhook-id": "msg_y", "webhook-timestamp": str(now), "webhook-signature": theirs}
    assert verify(SECRET, headers, body) == "msg_y"


async def test_delivery_to_a_name_resolving_inside_the_network_is_refused_unless_allowed() -> None:
    """The worker-side guard resolves the host: `localhost` is refused though it is not an IP."""
    import asyncio
    import socket
    from datetime import UTC, datetime

    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from temporalio.exceptions import ApplicationError

    from activities.webhooks import PublicAddressTransport, WebhookActivities
    from tests.scripted_llm import free_port
    from workflows.messages import WebhookEvent

    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=204)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)

    def event(host: str) -> WebhookEvent:
        return WebhookEvent(
            url=f"http://{host}:{port}/hook",
            event_id="evt_1",
            event_type="orchestration.completed",
            timestamp=datetime.now(UTC),
            data={},
        )

    # The machine's own name is no IP literal and no localhost name; it resolves inside.
    own_name = socket.gethostname()
    try:
        async with httpx.AsyncClient(transport=PublicAddressTransport()) as http:
            with pytest.raises(ApplicationError) as refused:
                await WebhookActivities(http, None, SECRET).deliver_webhook(event(own_name))
        assert refused.value.type == "WebhookTargetRefused" and refused.value.non_retryable
        assert f"{own_name} resolves to" in refused.value.message and received == []
        async with httpx.AsyncClient(transport=PublicAddressTransport(frozenset({"localhost"}))) as http:
            await WebhookActivities(http, None, SECRET).deliver_webhook(event("localhost"))
        assert len(received) == 1
    finally:
        server.should_exit = True
        await task
