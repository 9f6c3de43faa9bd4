"""The data converter of every client, worker and replayer: the message models as JSON
(pydantic), a payload that does not fit its model refused as non-retryable `InvalidPayload`,
and, with ORCH_ENCRYPTION_KEY, every payload encrypted (`worker/codec.py`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from worker.codec import EncryptionCodec
from workflows.contract import INVALID_PAYLOAD
from workflows.validation_errors import first_problem


class _ModelJSON(PydanticJSONPlainPayloadConverter):
    """pydantic's JSON converter, refusing a payload that does not fit its model with a
    non-retryable `InvalidPayload` error instead of a ValidationError: a run started with bad
    input fails (the SDK fails a workflow whose input converter raises a FailureError), an
    update with a bad argument is rejected, and a signal's is dropped. A ValidationError raised
    by workflow code is a bug: its workflow task retries until a fixed worker is deployed."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as err:
            model = getattr(type_hint, "__name__", "value")
            raise ApplicationError(
                f"not a valid {model}: {first_problem(err)}", type=INVALID_PAYLOAD, non_retryable=True
            ) from None


_MODEL_JSON = _ModelJSON()
_CONVERTERS = tuple(
    _MODEL_JSON if isinstance(converter, JSONPlainPayloadConverter) else converter
    for converter in DefaultPayloadConverter.default_encoding_payload_converters
)


class ModelPayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converters, with JSON through `_ModelJSON`. The SDK makes one
    per payload context (several per workflow task); they share the same stateless converters."""

    def __init__(self) -> None:
        super().__init__(*_CONVERTERS)


MODEL_DATA_CONVERTER = DataConverter(payload_converter_class=ModelPayloadConverter)


def data_converter(encryption_key: str | None) -> DataConverter:
    """The models' data converter; with a key, every payload is encrypted, and so are
    failures' messages and stack traces (moved into an encoded payload: history shows
    "Encoded failure", a client with the key sees the original)."""
    if not encryption_key:
        return MODEL_DATA_CONVERTER
    return dataclasses.replace(
        MODEL_DATA_CONVERTER,
        payload_codec=EncryptionCodec.from_setting(encryption_key),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
