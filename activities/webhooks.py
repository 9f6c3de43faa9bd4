"""Outbound webhooks, signed per the Standard Webhooks spec, and the matching verification.

Signing and verifying are the `standardwebhooks` library's (`Webhook`): the signature is
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, and a delivery older
or newer than 5 minutes (`TOLERANCE_SECONDS`) is refused. A secret written `whsec_<base64>` is the
base64-decoded key (the spec's form); any other secret is used as its UTF-8 bytes.

Deliveries reach only public addresses (`PublicAddressTransport`), and logs and errors show
a webhook URL without its query string or userinfo (`redacted_url`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import Iterable, Mapping
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

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 5 * 60
"""How far a delivery's `webhook-timestamp` may be from now: `standardwebhooks.Webhook`'s fixed
tolerance, which it does not expose."""
SECRET_PREFIX = "whsec_"
STALE = "webhook-timestamp is outside the 5-minute window"
NO_SIGNATURE = "no valid v1 signature"


class WebhookVerificationError(Exception):
    """A missing, wrong or stale signature."""


class WebhookTargetRefused(Exception):
    """The webhook URL points at an address that is not public (loopback, private, link-local,
    or an IPv6 form of one): SSRF guard."""


NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052: a translator delivers these to the IPv4 address in their last 32 bits."""
LOCAL_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b:1::/48")
"""RFC 8215: translators inside one network. Not globally reachable per the IANA registry,
though the copy of it in Python 3.11's `ipaddress` says it is."""
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
"""RFC 4291 (deprecated): the last 32 bits are an IPv4 address."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public_address(address: IPAddress) -> bool:
    """Whether webhooks may go to `address`: unicast and globally reachable per the IANA
    special-purpose registries (the standard library's `is_global`). An IPv6 address that
    carries an IPv4 one (IPv4-mapped or -compatible, NAT64, 6to4) must carry a public one too,
    as the network stack or a translator on the way delivers to that IPv4 address."""
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    # Site-local (fec0::/10) is deprecated, so the registries no longer list it as special.
    if address.is_site_local or address in LOCAL_NAT64_PREFIX:
        return False
    embedded = _embedded_ipv4(address)
    return embedded is None or is_public_address(embedded)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _host_name(host: str) -> str:
    """`host` as the allow-list spells it: no IPv6 brackets, lower case, no final dot."""
    return host.strip("[]").lower().rstrip(".")


def literal_target_problem(host: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why `host` may not receive webhooks, judging the name alone (no DNS): an IP literal
    that is not public, or a localhost name. None when fine or explicitly allowed."""
    name = _host_name(host)
    if name in allowed_hosts:
        return None
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a loopback name"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    return None if is_public_address(address) else f"{host} is not a public address"


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
        if _host_name(host) in self._allowed:
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


def _webhook(secret: str) -> standardwebhooks.Webhook:
    # The library base64-decodes every secret given as text; only the `whsec_` form is base64 here.
    return standardwebhooks.Webhook(secret if secret.startswith(SECRET_PREFIX) else secret.encode())


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    return _webhook(secret).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


_REASONS = {
    "Message timestamp too old": STALE,
    "Message timestamp too new": STALE,
    "Invalid Signature Headers": STALE,  # a timestamp after the year 9999
    "No matching signature found": NO_SIGNATURE,
}
"""The library's `WebhookVerificationError` messages (once the headers are present and the
timestamp is digits), as the API answers them."""


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """Check a delivery's signature and freshness; returns its `webhook-id`."""
    webhook = _webhook(secret)
    received = {name.lower(): value for name, value in headers.items()}
    webhook_id = received.get("webhook-id")
    timestamp = received.get("webhook-timestamp")
    # The library splits the list of signatures at single spaces only.
    received["webhook-signature"] = " ".join(received.get("webhook-signature", "").split())
    if not webhook_id or not timestamp or not received["webhook-signature"]:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    # The library would also take "1.7e9" or " 1_700_000_000", and check the signature of its floor.
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise WebhookVerificationError("webhook-timestamp is not a Unix time in seconds")
    try:
        webhook.verify(body.decode(), received, json_parse=False)
    except UnicodeDecodeError:
        raise WebhookVerificationError("the body is not UTF-8, so its signature cannot be checked") from None
    except standardwebhooks.WebhookVerificationError as err:
        raise WebhookVerificationError(_REASONS.get(str(err), str(err))) from None
    except ValueError:
        # A signature that is not `<version>,<base64>`: the library stops at it.
        raise WebhookVerificationError(NO_SIGNATURE) from None
    return webhook_id


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
