"""Read a workflow history as the plain text of every payload it holds."""

from __future__ import annotations

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory


def payload_texts(history: WorkflowHistory) -> list[str]:
    """Every payload's data (inputs, results, signals, memo, failures), decoded as UTF-8."""
    found: list[str] = []

    def walk(message: Message) -> None:
        if isinstance(message, Payload):
            found.append(message.data.decode("utf-8", errors="replace"))
            return
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if isinstance(value, Message):
                walk(value)
                continue
            items = value.values() if hasattr(value, "values") else value
            for item in items:
                if isinstance(item, Message):
                    walk(item)

    for event in history.events:
        walk(event)
    return found
