"""What both ends of a run's webhooks agree on, without I/O: which hosts may receive them, and
the key a webhook secret stands for.

A target must be a public address: unicast and globally reachable, and an IPv6 address that
carries an IPv4 one must carry a public one (`is_public_address`). The API refuses a new run's
`webhook_url` by its host name alone (`literal_target_problem`); the worker's delivery checks
every address the name resolves to as well (`activities.webhooks.PublicAddressTransport`).

The worker signs deliveries, and the API verifies inbound approvals, with the key
`signing_key` reads from a secret (`activities.webhooks.sign`, `api.webhook_signatures.verify`).
"""

from __future__ import annotations

import ipaddress

NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052: a translator delivers these to the IPv4 address in their last 32 bits."""
LOCAL_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b:1::/48")
"""RFC 8215: translators inside one network. Not globally reachable per the IANA registry,
though the copy of it in Python 3.11's `ipaddress` says it is."""
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
"""RFC 4291 (deprecated): the last 32 bits are an IPv4 address."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SECRET_PREFIX = "whsec_"


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


def host_name(host: str) -> str:
    """`host` as the allow-list spells it: no IPv6 brackets, lower case, no final dot."""
    return host.strip("[]").lower().rstrip(".")


def literal_target_problem(host: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why `host` may not receive webhooks, judging the name alone (no DNS): an IP literal
    that is not public, or a localhost name. None when fine or explicitly allowed."""
    name = host_name(host)
    if name in allowed_hosts:
        return None
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a loopback name"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    return None if is_public_address(address) else f"{host} is not a public address"


def signing_key(secret: str) -> str | bytes:
    """The key `standardwebhooks.Webhook` takes for `secret`: a secret written `whsec_<base64>`
    is the base64-decoded key (the spec's form), any other secret its UTF-8 bytes."""
    # The library base64-decodes every secret given as text; only the `whsec_` form is base64 here.
    return secret if secret.startswith(SECRET_PREFIX) else secret.encode()
