"""Optional payload encryption (ORCH_ENCRYPTION_KEY): AES-256-GCM over every payload, so
prompts, tool arguments and outputs are ciphertext in Temporal's history and visibility.

Key format: `kid:base64key[,kid:base64key...]` (32-byte keys). The first key encrypts; all
of them decrypt, so a key is rotated by putting a new one first and keeping the old ones
until no history needs them.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class EncryptionKeyError(ValueError):
    """ORCH_ENCRYPTION_KEY is malformed, or a payload names a key this process lacks."""


class EncryptionCodec(PayloadCodec):
    """Encrypts with the active key; decrypts with whichever key a payload names."""

    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active

    @classmethod
    def from_setting(cls, value: str) -> EncryptionCodec:
        keys: dict[str, bytes] = {}
        for entry in value.split(","):
            kid, sep, encoded = entry.strip().partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if not sep or not kid or len(key) != 32:
                raise EncryptionKeyError("ORCH_ENCRYPTION_KEY must be `kid:base64 of 32 bytes`, comma-separated")
            keys[kid] = key
        return cls(keys, active=next(iter(keys)))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        aead = self._keys[self._active]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = aead.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: self._active.encode()}, data=nonce + ciphertext)
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
            aead = self._keys.get(kid)
            if aead is None:
                raise EncryptionKeyError(f"payload encrypted with key {kid!r}, which this process does not have")
            if len(payload.data) <= NONCE_BYTES:
                raise InvalidTag  # too short to hold a nonce and a tag: not our ciphertext
            plain = aead.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
            decoded.append(Payload.FromString(plain))
        return decoded
