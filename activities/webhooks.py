"""Outbound webhooks, signed per the Standard Webhooks spec, and the matching verification.

Signature: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
A secret written `whsec_<base64>` is the base64-decoded key (the spec's form); any other
secret is used as its UTF-8 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Mapping

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.messages import WebhookEvent

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 5 * 60


class WebhookVerificationError(Exception):
    """A missing, wrong or stale signature."""


class WebhookTargetRefused(Exception):
    """The webhook URL points inside the network (loopback, private, link-local): SSRF guard."""


def literal_target_problem(host: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why `host` may not receive webhooks, judging the name alone (no DNS): an IP literal
    that is not public, or a localhost name. None when fine or explicitly allowed."""
    name = host.strip("[]").lower()
    if name in allowed_hosts:
        return None
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a loopback name"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    return None if address.is_global else f"{host} is not a public address"


class PublicAddressTransport(httpx.AsyncHTTPTransport):
    """Sends only to hosts that resolve to public addresses (or are in the allow-list), so a
    run's `webhook_url` cannot be used to reach services inside the network."""

    def __init__(self, allowed_hosts: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._allowed = allowed_hosts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        problem = literal_target_problem(host, self._allowed)
        if problem is None and host.lower() not in self._allowed:
            infos = await asyncio.get_running_loop().getaddrinfo(host, request.url.port or 443)
            private = [info[4][0] for info in infos if not ipaddress.ip_address(info[4][0]).is_global]
            if private:
                problem = f"{host} resolves to {private[0]}, which is not a public address"
        if problem is not None:
            raise WebhookTargetRefused(f"webhook refused: {problem} (allow it with ORCH_WEBHOOK_ALLOWED_HOSTS)")
        return await super().handle_async_request(request)


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode("utf-8")


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
    """Check a delivery's signature and freshness; returns its `webhook-id`."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise WebhookVerificationError("webhook-timestamp is not a Unix time in seconds")
    sent_at = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - sent_at) > TOLERANCE_SECONDS:
        raise WebhookVerificationError("webhook-timestamp is outside the 5-minute window")
    expected = sign(secret, webhook_id, sent_at, body).removeprefix("v1,")
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return webhook_id
    raise WebhookVerificationError("no valid v1 signature")


class WebhookActivities:
    """Delivers run events to the run's `webhook_url` or the worker's `ORCH_WEBHOOK_URL`."""

    def __init__(self, http: httpx.AsyncClient, default_url: str | None, secret: str | None) -> None:
        self._http = http
        self._default_url = default_url
        self._secret = secret

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, event: WebhookEvent) -> None:
        """POST one event; any non-2xx answer or network error is retried by Temporal."""
        url = event.url or self._default_url
        if not url:
            return
        body = json.dumps(
            {"type": event.event_type, "timestamp": event.timestamp.isoformat(), "data": event.data},
            separators=(",", ":"),
        ).encode()
        # Signed at send time: a retry an hour later must still pass the receiver's window.
        sent_at = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": event.event_id,
            "webhook-timestamp": str(sent_at),
        }
        if self._secret:
            headers["webhook-signature"] = sign(self._secret, event.event_id, sent_at, body)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except WebhookTargetRefused as err:
            raise ApplicationError(str(err), type="WebhookTargetRefused", non_retryable=True) from None
        except httpx.HTTPError as err:
            raise ApplicationError(f"webhook {url} unreachable: {type(err).__name__}", type="WebhookFailed") from None
        if response.status_code >= 300:
            raise ApplicationError(f"webhook {url} answered {response.status_code}", type="WebhookFailed")
        logger.info("webhook %s delivered to %s", event.event_type, url)
