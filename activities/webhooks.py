"""Outbound webhooks, signed per the Standard Webhooks spec.

Signing is the `standardwebhooks` library's (`Webhook`): the signature is
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, with the key
`workflows.webhook_targets.signing_key` reads from the secret. The API verifies inbound
approvals the same way (`api.webhook_signatures`).

Deliveries reach only public addresses (`PublicAddressTransport`, by the rule in
`workflows.webhook_targets`), and logs and errors show a webhook URL without its query string
or userinfo (`redacted_url`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
import standardwebhooks
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.redaction import keep_url_secrets_out_of_httpx_logs, redacted_url
from workflows.activity_io import WebhookEvent
from workflows.contract import DELIVER_WEBHOOK_ACTIVITY
from workflows.webhook_targets import host_name, is_public_address, literal_target_problem, signing_key

logger = logging.getLogger(__name__)


class WebhookTargetRefused(Exception):
    """The webhook URL points at an address that is not public (loopback, private, link-local,
    or an IPv6 form of one): SSRF guard."""


def _refused(problem: str) -> WebhookTargetRefused:
    return WebhookTargetRefused(f"webhook refused: {problem} (allow it with ORCH_WEBHOOK_ALLOWED_HOSTS)")


class PublicAddressBackend(httpcore.AsyncNetworkBackend):
    """Opens the TCP connections of `PublicAddressTransport`: resolves a host once, refuses it
    when any of its addresses is not public, then connects to one of exactly those addresses.
    Checking and then letting the socket layer resolve the name again would let a DNS answer
    that changes in between (DNS rebinding) send the webhook to 127.0.0.1."""

    def __init__(self, allowed_hosts: frozenset[str]) -> None:
        self._allowed = allowed_hosts
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host_name(host) in self._allowed:
            return await self._network.connect_tcp(host, port, timeout, local_address, socket_options)
        problem = literal_target_problem(host, self._allowed)
        if problem is not None:
            raise _refused(problem)
        addresses = await _resolve(host, port)
        inside = next((a for a in addresses if not is_public_address(ipaddress.ip_address(a))), None)
        if inside is not None:
            raise _refused(f"{host} resolves to {inside}, which is not a public address")
        failure = httpcore.ConnectError(f"no address of {host} answered")
        for address in addresses:
            try:
                return await self._network.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as err:
                failure = err
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order of preference."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from err
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PublicAddressTransport(httpx.AsyncHTTPTransport):
    """Sends only to hosts whose every address is public (or to the allow-listed hosts), and
    connects to exactly the addresses it checked, so a run's `webhook_url` cannot reach
    services inside the network. Only the TCP connection is pinned: the request keeps its
    Host header, and HTTPS its SNI and certificate check, for the URL's host name."""

    def __init__(self, allowed_hosts: frozenset[str] = frozenset()) -> None:
        super().__init__()
        # httpx's transport takes no network backend, so the pool it built (`_pool`) is replaced
        # by one that connects through the check, with httpx's default TLS context and limits.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=PublicAddressBackend(allowed_hosts),
        )


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    webhook = standardwebhooks.Webhook(signing_key(secret))
    return webhook.sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


class WebhookActivities:
    """Delivers run events to the run's `webhook_url` or the worker's `ORCH_WEBHOOK_URL`."""

    def __init__(self, http: httpx.AsyncClient, default_url: str | None, secret: str | None) -> None:
        self._http = http
        self._default_url = default_url
        self._secret = secret
        # The worker logs at INFO, where httpx would write each delivery's full URL.
        keep_url_secrets_out_of_httpx_logs()

    @activity.defn(name=DELIVER_WEBHOOK_ACTIVITY)
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
        target = redacted_url(url)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except WebhookTargetRefused as err:
            raise ApplicationError(str(err), type="WebhookTargetRefused", non_retryable=True) from None
        except httpx.HTTPError as err:
            raise ApplicationError(
                f"webhook {target} unreachable: {type(err).__name__}", type="WebhookFailed"
            ) from None
        if response.status_code >= 300:
            raise ApplicationError(f"webhook {target} answered {response.status_code}", type="WebhookFailed")
        logger.info("webhook %s delivered to %s", event.event_type, target)
