"""Sealing the secrets the store keeps (header and env values, OAuth client secrets and tokens)
with ORCH_SECRETS_KEY: Fernet (AES-CBC + HMAC, from `cryptography`). Several comma-separated
keys rotate: the first seals, any opens."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsKeyError(Exception):
    """No ORCH_SECRETS_KEY, a malformed one, or a sealed value no configured key opens."""


class Sealer:
    """Seals and opens JSON values."""

    def __init__(self, setting: str | None) -> None:
        keys = [part.strip() for part in (setting or "").split(",") if part.strip()]
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None
        except (ValueError, TypeError):
            raise SecretsKeyError(
                "ORCH_SECRETS_KEY: each key must be 32 url-safe base64-encoded bytes "
                "(`orch keys secrets-key` makes one)"
            ) from None

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def seal(self, value: Any) -> str:
        return self._required().encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()

    def open(self, sealed: str) -> Any:
        try:
            return json.loads(self._required().decrypt(sealed.encode()))
        except InvalidToken:
            raise SecretsKeyError(
                "a stored secret does not open with ORCH_SECRETS_KEY (was the key changed?)"
            ) from None

    def _required(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsKeyError("secrets need ORCH_SECRETS_KEY (`orch keys secrets-key` makes one)")
        return self._fernet


def new_secrets_key() -> str:
    return Fernet.generate_key().decode()
