"""API keys (`ORCH_API_KEYS`): who may call the API, with which roles and MCP scope.

The setting is a path to a JSON file, or the JSON itself:

    {"keys": [{"name": "ci-bot", "sha256": "<hex of sha256(key)>", "roles": ["run"],
               "mcp_scopes": ["time", "github.create_issue"]}]}

Only hashes are stored; `orch keys new` makes a key and its entry. A presented key
(`Authorization: Bearer <key>`) is hashed and compared with every stored hash in constant
time. Roles: `run` starts runs and reads, lists and cancels its own; `approve` reads every
run and decides tool calls; `admin` does everything (and uses the codec endpoints).

With no keys configured, the API answers only a caller on this machine: the socket's address,
the `Host` header and, for writes, the `Origin` must all be loopback (see `check_keys_off_request`).
With keys, any host may call: browsers never attach a bearer key by themselves, so a page on
another site can neither read nor write with one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.errors import APIError
from workflows.validation_errors import first_problem

KEY_PREFIX = "orch_"


class Role(StrEnum):
    RUN = "run"
    APPROVE = "approve"
    ADMIN = "admin"


class APIKeysError(Exception):
    """ORCH_API_KEYS cannot be read or is invalid; one line naming the problem."""


class APIKeyEntry(BaseModel):
    """One stored key: its name (the identity in audit records), hash, roles and scope."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@:-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    roles: list[Role] = Field(min_length=1)
    mcp_scopes: list[str] | None = Field(
        default=None, description="`server` or `server.tool` (globs) its runs may use; absent: every tool."
    )

    @field_validator("name")
    @classmethod
    def _not_a_name_the_run_records(cls, name: str) -> str:
        # The audit's `approver` is the key's name; these are what the run itself records.
        if name == "system" or name.startswith("rule:"):
            raise ValueError("`system` and `rule:...` name the approval timeout and auto-approval rules in the audit")
        return name

    @field_validator("mcp_scopes")
    @classmethod
    def _scopes_name_something(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not entry.partition(".")[0] for entry in value):
            raise ValueError("each MCP scope is `server` or `server.tool`")
        return value


class APIKeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[APIKeyEntry] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[APIKeyEntry]) -> list[APIKeyEntry]:
        names = [key.name for key in keys]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"key names must be unique: {duplicates}")
        return keys


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, roles and scope (or the loopback user when keys are off)."""

    name: str | None
    roles: frozenset[Role]
    mcp_scopes: tuple[str, ...] | None = None

    def has(self, role: Role) -> bool:
        return Role.ADMIN in self.roles or role in self.roles

    @property
    def reads_every_run(self) -> bool:
        """admin and approve read every run; `run` alone only its own."""
        return self.has(Role.APPROVE)

    def may_read(self, owner: str | None) -> bool:
        return self.reads_every_run or self.started(owner)

    def may_cancel(self, owner: str | None) -> bool:
        return Role.ADMIN in self.roles or self.started(owner)

    def started(self, owner: str | None) -> bool:
        return owner is not None and owner == self.name


LOOPBACK_USER = Principal(name=None, roles=frozenset(Role))
"""The caller when no keys are configured (the API then answers only on loopback)."""
WEBHOOK_SENDER = Principal(name=None, roles=frozenset({Role.APPROVE}))
"""A system that signed its approval with ORCH_WEBHOOK_SECRET."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys; `authenticate` compares a presented key against all in constant time."""

    def __init__(self, entries: list[APIKeyEntry]) -> None:
        self._entries = [(bytes.fromhex(entry.sha256), entry) for entry in entries]

    def secret_material(self) -> bytes:
        """The stored hashes, sorted: bytes that only holders of these keys' configuration have,
        for deriving a key every API replica shares (the page-token key, api/service.py)."""
        return b"".join(sorted(stored for stored, _ in self._entries))

    def authenticate(self, presented: str) -> APIKeyEntry | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found: APIKeyEntry | None = None
        for stored, entry in self._entries:
            # Every entry is compared, whatever matched, so timing says nothing about which.
            if hmac.compare_digest(stored, digest):
                found = entry
        return found


def load_api_keys(setting: str | None) -> KeyRing | None:
    """The key ring from ORCH_API_KEYS (a path, or inline JSON); None when unset."""
    if setting is None or not setting.strip():
        return None
    text = setting.strip()
    where = "ORCH_API_KEYS"
    if not text.startswith("{"):
        path = Path(text)
        where = f"ORCH_API_KEYS file {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise APIKeysError(f"{where}: cannot read it ({err.strerror or err})") from None
    try:
        parsed = APIKeysFile.model_validate(json.loads(text))
    except json.JSONDecodeError as err:
        raise APIKeysError(f"{where}: not JSON ({err.msg} at line {err.lineno})") from None
    except ValidationError as err:
        raise APIKeysError(f"{where}: {first_problem(err)}") from None
    return KeyRing(parsed.keys)


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


_bearer = HTTPBearer(auto_error=False, description="An API key from ORCH_API_KEYS (see `orch keys new`).")


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; 401 without a valid key. With no keys
    configured, the loopback user, once `check_keys_off_request` lets the request through.
    Every route that acts on runs depends on this; the signed webhook and the probes do not."""
    keys: KeyRing | None = request.app.state.api_keys
    if keys is None:
        check_keys_off_request(request)
        return LOOPBACK_USER
    if credentials is None:
        raise APIError(401, "unauthorized", "missing API key: send `Authorization: Bearer <key>`")
    entry = keys.authenticate(credentials.credentials)
    if entry is None:
        raise APIError(401, "unauthorized", "invalid API key")
    scopes = tuple(entry.mcp_scopes) if entry.mcp_scopes is not None else None
    return Principal(name=entry.name, roles=frozenset(entry.roles), mcp_scopes=scopes)


def requires(role: Role) -> object:
    """A dependency: the caller, who must hold `role` (or admin); 403 otherwise."""

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has(role):
            raise APIError(403, "forbidden", f"API key {principal.name!r} lacks the {role.value!r} role")
        return principal

    return Depends(check)


Caller = Annotated[Principal, Depends(authenticate)]
Runner = Annotated[Principal, requires(Role.RUN)]
Approver = Annotated[Principal, requires(Role.APPROVE)]
Admin = Annotated[Principal, requires(Role.ADMIN)]
