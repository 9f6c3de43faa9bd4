"""Standard Webhooks signing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from activities.webhooks import sign
from api.webhook_signatures import TOLERANCE_SECONDS, WebhookVerificationError, verify

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
        (lambda h: h.update({"webhook-signature": "v1,x"}), "no valid v1 signature"),  # not base64
        (lambda h: h.update({"webhook-signature": "v1"}), "no valid v1 signature"),  # no comma
        (lambda h: h.update({"webhook-signature": " "}), "missing"),
        (lambda h: h.pop("webhook-id"), "missing"),
        (lambda h: h.update({"webhook-timestamp": "yesterday"}), "Unix time"),
        (lambda h: h.update({"webhook-timestamp": "1.7e9"}), "Unix time"),
        (lambda h: h.update({"webhook-timestamp": "9" * 400}), "Unix time"),
        (lambda h: h.update({"webhook-timestamp": "999999999999"}), "5-minute window"),  # after the year 9999
    ],
)
def test_verify_rejects_bad_headers(mutate, message: str) -> None:
    headers = _headers(SECRET, b"{}", int(time.time()))
    mutate(headers)
    with pytest.raises(WebhookVerificationError, match=message):
        verify(SECRET, headers, b"{}")


def test_verify_takes_signatures_apart_at_any_whitespace_and_headers_in_any_case() -> None:
    headers = _headers(SECRET, b"{}", int(time.time()))
    signed = {
        "Webhook-Id": headers["webhook-id"],
        "WEBHOOK-TIMESTAMP": headers["webhook-timestamp"],
        "webhook-signature": "v2,bm9wZQ==  \t" + headers["webhook-signature"],
    }
    assert verify(SECRET, signed, b"{}") == "msg_1"


def test_verify_rejects_stale_tampered_and_wrong_secret() -> None:
    now = int(time.time())
    assert verify(SECRET, _headers(SECRET, b"{}", now - TOLERANCE_SECONDS + 5), b"{}") == "msg_1"
    assert verify(SECRET, _headers(SECRET, b"{}", now + TOLERANCE_SECONDS - 5), b"{}") == "msg_1"
    for at in (now - TOLERANCE_SECONDS - 1, now + TOLERANCE_SECONDS + 5):
        with pytest.raises(WebhookVerificationError, match="5-minute window"):
            verify(SECRET, _headers(SECRET, b"{}", at), b"{}")
    with pytest.raises(WebhookVerificationError, match="no valid v1 signature"):
        verify(SECRET, _headers(SECRET, b"{}", now), b'{"tampered":1}')
    with pytest.raises(WebhookVerificationError, match="no valid v1 signature"):
        verify("another-secret", _headers(SECRET, b"{}", now), b"{}")
    with pytest.raises(WebhookVerificationError, match="UTF-8"):
        verify(SECRET, _headers(SECRET, b"{}", now), b"\xff{}")


def test_plain_secrets_are_used_as_utf8_bytes() -> None:
    now = int(time.time())
    expected = base64.b64encode(hmac.new(b"plain secret", b"msg_1.1700000000.{}", hashlib.sha256).digest())
    assert sign("plain secret", "msg_1", 1700000000, b"{}") == "v1," + expected.decode()
    assert verify("plain secret", _headers("plain secret", b"{}", now), b"{}") == "msg_1"


def test_errors_never_show_the_secret() -> None:
    """Neither a signature that does not match nor a secret that is not base64 after `whsec_`
    (the API answers 500) puts the secret in the error."""
    headers = _headers("another-secret", b"{}", int(time.time()))
    for key in (base64.b64encode(b"do-not-show-me").decode(), "s3cr3tk3y", ""):
        with pytest.raises(Exception) as failure:
            verify("whsec_" + key, headers, b"{}")
        shown = f"{failure.value!r} {failure.value}"
        assert (key or "whsec_") not in shown and "do-not-show-me" not in shown, shown


async def test_what_the_activity_sends_is_verified_by_the_standardwebhooks_library() -> None:
    """Receivers using the reference library accept our deliveries, and we accept its signatures."""
    from datetime import UTC, datetime

    import httpx
    from standardwebhooks import Webhook
    from temporalio.testing import ActivityEnvironment

    from activities.webhooks import WebhookActivities
    from workflows.activity_io import WebhookEvent

    sent: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    event = WebhookEvent(
        url="https://hooks.example/hook",
        event_id="evt_1",
        event_type="orchestration.completed",
        timestamp=datetime.now(UTC),
        data={"output": "d\u00e9j\u00e0 vu"},
    )
    receivers = {SECRET: Webhook(SECRET), "plain secret": Webhook(b"plain secret")}
    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as http:
        for secret, receiver in receivers.items():
            await ActivityEnvironment().run(WebhookActivities(http, None, secret).deliver_webhook, event)
            request = sent.pop()
            assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= request.headers.keys()
            assert receiver.verify(request.content, dict(request.headers))["data"] == event.data
            with pytest.raises(Exception, match="No matching signature"):
                Webhook("whsec_" + base64.b64encode(b"someone else").decode()).verify(
                    request.content, dict(request.headers)
                )

    body = b'{"type":"orchestration.completed","data":{}}'
    now = int(time.time())
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
    from workflows.activity_io import WebhookEvent

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
