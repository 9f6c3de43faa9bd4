"""API keys (`ORCH_API_KEYS`): the file that lists them, and the key ring read from it.

The setting is a path to a JSON file, or the JSON itself:

    {"keys": [{"name": "ci-bot", "sha256": "<hex of sha256(key)>", "roles": ["run"],
               "mcp_scopes": ["time", "github.create_issue"]}]}

Only hashes are stored; `orch keys new` makes a key and its entry. A presented key is hashed
and compared with every stored hash in constant time (`KeyRing.authenticate`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workflows.contract import RULE_APPROVER_PREFIX, TIMED_OUT_APPROVER
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
        if name == TIMED_OUT_APPROVER or name.startswith(RULE_APPROVER_PREFIX):
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
        for deriving a key every API replica shares (the page-token key, api/page_tokens.py)."""
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
