"""The guard for when no API keys are configured: the API then answers only a caller on this
machine. The socket's address, the `Host` header, every client a proxy forwards for and, for
writes, the `Origin` must all be loopback (`check_keys_off_request`); the Temporal UI's origin
may call the codec endpoints (`origin_of` spells ORCH_TEMPORAL_UI_URL as an `Origin`)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from fastapi import Request

from api.errors import APIError


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_AUTHORITY = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[^\[\]:/@\s]+)(?::[0-9]{1,5})?", re.IGNORECASE)
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CODEC_PATH_PREFIX = "/codec/"
"""The codec endpoints (api/routers/codec.py), which the Temporal UI calls from the browser."""


def is_loopback_authority(authority: str) -> bool:
    """`host[:port]` names this machine: `localhost`, a `*.localhost` name (RFC 6761; browsers
    resolve those to loopback themselves, so no DNS answer can rebind them), a 127/8 address or
    `[::1]`. Anything else, `0.0.0.0` and userinfo tricks included, is not."""
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        return False
    host = match["host"].lower()
    return host.endswith(".localhost") or is_loopback(host)


def origin_of(url: str) -> str:
    """The browser origin (`scheme://host[:port]`) of `url`, as an `Origin` header carries it."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_trusted_origin(origin: str, request: Request) -> bool:
    """A page on this machine, or the Temporal UI (ORCH_TEMPORAL_UI_URL) calling the codec."""
    scheme, separator, authority = origin.lower().partition("://")
    if separator and scheme in ("http", "https") and is_loopback_authority(authority):
        return True
    ui_origin: str = request.app.state.temporal_ui_origin
    return origin.lower() == ui_origin and request.url.path.startswith(CODEC_PATH_PREFIX)


def check_keys_off_request(request: Request) -> None:
    """Keys off, serve only a caller on this machine (403 otherwise). A loopback socket is not
    enough: a web page reaches it too, through the browser of the person running the API,
    either by DNS rebinding (its own name resolves to 127.0.0.1, so the request carries that
    name as `Host`) or by a cross-site form or `fetch` (which carries the page's `Origin`, or at
    least `Sec-Fetch-Site: cross-site`). A cross-site read needs no check: the browser does not
    let the page see the answer. A request without `Host` (HTTP/1.0) is from no browser."""
    server = request.scope.get("server")
    if server is not None and not is_loopback(server[0]):
        raise APIError(
            403,
            "auth_not_configured",
            "no API keys are configured (ORCH_API_KEYS), so this API answers only on loopback",
        )
    host = request.headers.get("host")
    if host is not None and not is_loopback_authority(host):
        raise APIError(
            403,
            "host_not_loopback",
            "no API keys are configured (ORCH_API_KEYS), so this API answers only to loopback names "
            f"(localhost, 127.0.0.1, [::1]); Host {host[:100]!r} is not one",
        )
    remote = next((client for client in _forwarded_clients(request) if not is_loopback(client)), None)
    if remote is not None:
        raise APIError(
            403,
            "proxied_request",
            "no API keys are configured (ORCH_API_KEYS), so this API refuses requests a proxy forwards from "
            f"another machine ({remote[:100]!r}); configure API keys to serve through a proxy",
        )
    if request.method not in STATE_CHANGING_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is not None:
        refused = not _is_trusted_origin(origin, request)
        sender = f"Origin {origin[:100]!r}"
    else:
        refused = request.headers.get("sec-fetch-site", "").lower() == "cross-site"
        sender = "Sec-Fetch-Site: cross-site"
    if refused:
        raise APIError(
            403,
            "cross_site_request",
            f"no API keys are configured (ORCH_API_KEYS), so this API refuses cross-site {request.method} requests "
            f"({sender}); send it from a page on this machine, or from no browser",
        )


def _forwarded_clients(request: Request) -> list[str]:
    """The client addresses a proxy put in `X-Forwarded-For` and `Forwarded` (`for=`)."""
    clients = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
    for element in request.headers.get("forwarded", "").replace(",", ";").split(";"):
        name, _, value = element.strip().partition("=")
        if name.lower() == "for" and value:
            node = value.strip('"')  # RFC 7239: `192.0.2.60:80`, `"[2001:db8::1]:4711"`, `unknown`
            authority = _AUTHORITY.fullmatch(node)
            clients.append(authority["host"] if authority else node)
    return clients
