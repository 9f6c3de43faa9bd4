"""/codec/encode and /codec/decode: Temporal's remote codec protocol, so the Temporal UI
(Settings -> Codec Server) and CLI (`--codec-endpoint`) can show encrypted payloads."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict
from temporalio.api.common.v1 import Payloads

from api.auth import Admin
from api.deps import SettingsDep
from api.errors import APIError, error_responses
from worker.codec import EncryptionCodec, EncryptionKeyError

router = APIRouter(prefix="/codec", tags=["codec"])


class CodecPayloads(BaseModel):
    """Protobuf-JSON `Payloads`: each payload's `metadata` values and `data` in base64."""

    model_config = ConfigDict(extra="forbid")

    payloads: list[dict[str, Any]]


def _codec(encryption_key: str | None) -> EncryptionCodec:
    if not encryption_key:
        raise APIError(404, "not_found", "payload encryption is not enabled (ORCH_ENCRYPTION_KEY)")
    return EncryptionCodec.from_setting(encryption_key)


def _parse(body: CodecPayloads) -> Payloads:
    try:
        return json_format.ParseDict(body.model_dump(), Payloads())
    except json_format.ParseError as err:
        raise APIError(422, "invalid_request", f"not protobuf-JSON payloads: {err}") from None


@router.post("/encode", response_model=CodecPayloads, responses=error_responses(400, 401, 403, 404, 422))
async def encode(body: CodecPayloads, _: Admin, settings: SettingsDep) -> CodecPayloads:
    """Encrypt payloads with the active key (`admin` role)."""
    encoded = await _codec(settings.encryption_key).encode(list(_parse(body).payloads))
    return CodecPayloads.model_validate(json_format.MessageToDict(Payloads(payloads=encoded)) or {"payloads": []})


@router.post("/decode", response_model=CodecPayloads, responses=error_responses(400, 401, 403, 404, 422))
async def decode(body: CodecPayloads, _: Admin, settings: SettingsDep) -> CodecPayloads:
    """Decrypt payloads (plain ones pass through unchanged; `admin` role)."""
    try:
        decoded = await _codec(settings.encryption_key).decode(list(_parse(body).payloads))
    except EncryptionKeyError as err:
        raise APIError(422, "unknown_key", str(err)) from None
    except InvalidTag:
        raise APIError(422, "undecryptable", "a payload could not be decrypted with the configured keys") from None
    return CodecPayloads.model_validate(json_format.MessageToDict(Payloads(payloads=decoded)) or {"payloads": []})
