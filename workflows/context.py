"""Keeping the conversation within a byte budget: the oldest tool outputs are elided first.

The conversation is the LLM call's input, recorded in history at every step, and it is
carried across continue-as-new; without a bound a long run's steps grow without limit
(and a payload over Temporal's 2 MB blob limit fails the run). Deterministic: the
workflow calls it before each LLM call.
"""

from __future__ import annotations

import json

from workflows.chat_messages import ChatMessage

ELIDED_PREFIX = "[elided to fit the context budget: "
PREVIEW_CHARS = 200


def conversation_bytes(messages: list[ChatMessage]) -> int:
    return sum(_size(message) for message in messages)


def fit_to_budget(messages: list[ChatMessage], budget_bytes: int) -> int:
    """Elide the oldest tool outputs (keeping a preview) until the conversation fits in
    `budget_bytes`, or no tool output is left to elide; returns how many were elided.
    The user's messages, the model's own messages and the newest tool outputs are kept."""
    total = conversation_bytes(messages)
    elided = 0
    for message in messages:
        if total <= budget_bytes:
            break
        if message.role != "tool" or not isinstance(message.content, str) or message.content.startswith(ELIDED_PREFIX):
            continue
        if len(message.content) <= PREVIEW_CHARS:
            continue
        before = _size(message)
        original = len(message.content.encode())
        message.content = f"{ELIDED_PREFIX}{original} bytes; it began] {message.content[:PREVIEW_CHARS]}"
        total -= before - _size(message)
        elided += 1
    return elided


def _size(message: ChatMessage) -> int:
    return len(json.dumps(message.model_dump(mode="json", exclude_none=True)).encode())
