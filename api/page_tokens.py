"""Listing page tokens: Temporal's, signed by the API so a forged one never reaches Temporal."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from api.api_keys import load_api_keys
from api.errors import APIError
from worker.settings import Settings


def page_token_key(settings: Settings) -> bytes | None:
    """ORCH_PAGE_TOKEN_KEY; unset, a key derived from the secrets every API replica already
    shares (the ORCH_API_KEYS entries, ORCH_ENCRYPTION_KEY), so replicas behind one load
    balancer accept each other's tokens; None when there is neither."""
    if settings.page_token_key:
        return settings.page_token_key.encode()
    api_keys = load_api_keys(settings.api_keys)
    shared = [api_keys.secret_material() if api_keys else b"", (settings.encryption_key or "").encode()]
    if not any(shared):
        return None
    material = b"".join(len(part).to_bytes(4, "big") + part for part in shared)
    return hmac.new(material, b"orchestrations page-token key", hashlib.sha256).digest()


class PageTokens:
    """Temporal's page tokens as the API hands them out: the bytes and an HMAC-SHA256 tag, so a
    forged or garbled token is refused (400) before it reaches Temporal (some visibility stores
    answer a garbled token with a 5xx, which the API would retry for seconds). Without a shared
    key (`page_token_key`), each process makes its own and accepts only tokens it issued."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._refusal = "page_token is not a token from a previous page"
        if key is None:
            self._refusal += (
                ", or was issued by another API process (replicas accept each other's page tokens only with the "
                "same ORCH_PAGE_TOKEN_KEY)"
            )

    def encode(self, raw: bytes) -> str:
        return _unpadded_base64(raw) + "." + _unpadded_base64(self._tag(raw))

    def decode(self, token: str) -> bytes:
        """The Temporal page token inside `token`; 400 `bad_page_token` unless this key signed it."""
        encoded, _, tag = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        expected = _unpadded_base64(self._tag(raw)).encode()
        # Only the canonical spelling: the decoder skips characters outside the alphabet.
        if raw and _unpadded_base64(raw) == encoded and hmac.compare_digest(tag.encode(), expected):
            return raw
        raise APIError(400, "bad_page_token", self._refusal)

    def _tag(self, raw: bytes) -> bytes:
        return hmac.new(self._key, b"orchestrations-page-token:" + raw, hashlib.sha256).digest()[:16]


def _unpadded_base64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
