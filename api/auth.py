"""Who is calling, as every route that acts on runs sees it: the `authenticate` dependency
(`Authorization: Bearer <key>`, checked against the key ring of `api.api_keys`), and the roles
the routes require. Roles: `run` starts runs and reads, lists and cancels its own; `approve`
reads every run and decides tool calls; `admin` does everything (and uses the codec endpoints).

With no keys configured, the API answers only a caller on this machine (`api.loopback`).
With keys, any host may call: browsers never attach a bearer key by themselves, so a page on
another site can neither read nor write with one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.api_keys import KeyRing, Role
from api.errors import APIError
from api.loopback import check_keys_off_request


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
