"""Read a workflow history: the plain text of every payload it holds, what a local activity's
marker says of it."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
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


def local_activity(event: HistoryEvent) -> dict[str, Any] | None:
    """What a local activity's marker records of it (`activity_type`, `activity_id`, `attempt`,
    ...: its input is not recorded), or None for any other event."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != "core_local_activity" or "data" not in marker.details:
        return None
    data: dict[str, Any] = json.loads(marker.details["data"].payloads[0].data)
    return data
