"""API keys (`ORCH_API_KEYS`): who may call the API, with which roles and MCP scope.

The setting is a path to a JSON file, or the JSON itself:

    {"keys": [{"name": "ci-bot", "sha256": "<hex of sha256(key)>", "roles": ["run"],
               "mcp_scopes": ["time", "github.create_issue"]}]}

Only hashes are stored; `orch keys new` makes a key and its entry. A presented key
(`Authorization: Bearer <key>`) is hashed and compared with every stored hash in constant
time. Roles: `run` starts runs and reads, lists and cancels its own; `approve` reads every
run and decides tool calls; `admin` does everything (and uses the codec endpoints).

With no keys configured, the API answers only on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.errors import APIError

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
        first = err.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise APIKeysError(f"{where}: {location}: {first['msg']}") from None
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


_bearer = HTTPBearer(auto_error=False, description="An API key from ORCH_API_KEYS (see `orch keys new`).")


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; 401 without a valid key."""
    keys: KeyRing | None = request.app.state.api_keys
    if keys is None:
        server = request.scope.get("server")
        if server is not None and not is_loopback(server[0]):
            raise APIError(
                403,
                "auth_not_configured",
                "no API keys are configured (ORCH_API_KEYS), so this API answers only on loopback",
            )
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
