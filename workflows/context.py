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


def fit_to_budget(messages: list[ChatMessage], budget_bytes: int) -> list[int]:
    """Elide the oldest tool outputs (keeping a preview) until the conversation fits in
    `budget_bytes`, or no tool output is left to elide; returns the indices elided.
    The user's messages, the model's own messages and the newest tool outputs are kept."""
    return ConversationBudget(budget_bytes).fit(messages)


class ConversationBudget:
    """`fit_to_budget` for a conversation that only grows between calls (the workflow's: it
    appends, and elides through here): each message is measured once, and the search for the
    next output to elide resumes where the last one stopped, so a step costs what it adds,
    not the conversation's length."""

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._sizes: list[int] = []
        self.bytes = 0
        """The conversation's size at the last `fit` (the sum of `_sizes`)."""
        self._next = 0
        """Messages before this one are elided or cannot be."""

    def fit(self, messages: list[ChatMessage]) -> list[int]:
        added = [_size(message) for message in messages[len(self._sizes) :]]
        self._sizes += added
        self.bytes += sum(added)
        elided: list[int] = []
        while self.bytes > self._budget and self._next < len(messages):
            index, message = self._next, messages[self._next]
            self._next += 1
            if message.role != "tool" or not isinstance(message.content, str):
                continue
            if message.content.startswith(ELIDED_PREFIX) or len(message.content) <= PREVIEW_CHARS:
                continue
            original = len(message.content.encode())
            message.content = f"{ELIDED_PREFIX}{original} bytes; it began] {message.content[:PREVIEW_CHARS]}"
            size = _size(message)
            self.bytes -= self._sizes[index] - size
            self._sizes[index] = size
            elided.append(index)
        return elided


def _size(message: ChatMessage) -> int:
    return len(json.dumps(message.model_dump(mode="json", exclude_none=True)).encode())
