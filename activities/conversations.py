"""Each run's conversation, kept by the worker between the run's LLM calls, so that the run sends
each call only what changed (`LLMDeltaRequest`) and its history records each message about once
instead of the whole conversation at every step.

The cache is an optimisation, never the record: every message is in the run's history (the
request, the replies, the tool results), and a worker that lacks the conversation (restarted,
the run's previous call ran elsewhere, evicted) asks the run for it with a query: the workflow
answers from its state, rebuilt by replaying that history if need be.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.activity_io import LLMDeltaRequest, LLMRequest
from workflows.chat_messages import ChatMessage
from workflows.contract import CONVERSATION_QUERY

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

RunKey = tuple[str, str]
"""A workflow run: (workflow id, run id). A continue-as-new starts a new conversation key."""


@dataclass(frozen=True)
class _Conversation:
    step: int
    messages: list[ChatMessage]
    tools: list[dict[str, Any]]
    size: int


MESSAGE_OVERHEAD_BYTES = 512
"""What a message costs in memory beyond its text (the model object, its fields)."""
TOOL_SETS_KEPT = 64


def _size(message: ChatMessage) -> int:
    text = message.content if isinstance(message.content, str) else json.dumps(message.content or "")
    return len(text) + MESSAGE_OVERHEAD_BYTES


def _request(model: str, messages: list[ChatMessage], tools: list[dict[str, Any]]) -> LLMRequest:
    """A request of parts already validated, kept as they are (so that runs share one tool list)."""
    return LLMRequest.model_construct(model=model, messages=messages, tools=tools)


class ConversationCache:
    """Each run's conversation as of its latest LLM call, least recently used dropped first
    beyond `max_bytes` (of messages, approximately). Runs offered the same tools share one copy
    of their definitions (most runs of a worker are offered the same ones)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[RunKey, _Conversation] = OrderedDict()
        self._tool_sets: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, run: RunKey, delta: LLMDeltaRequest) -> LLMRequest | None:
        """The whole request `delta` stands for, or None when this cache cannot tell."""
        known = self._entries.get(run)
        if known is not None and known.step == delta.step and len(known.messages) == delta.length():
            return _request(delta.model, known.messages, known.tools)  # a retry
        if delta.base_length == 0 and delta.tools is not None:
            base: list[ChatMessage] = []
            tools = delta.tools
        elif known is not None and known.step == delta.step - 1 and len(known.messages) == delta.base_length:
            base = known.messages
            tools = known.tools if delta.tools is None else delta.tools
        else:
            return None
        messages = [*base, *delta.appended]
        for index, message in delta.edited.items():
            if index >= delta.base_length:
                raise ApplicationError(f"edited message {index} is not below base_length {delta.base_length}")
            messages[index] = message
        return _request(delta.model, messages, tools)

    def store(self, run: RunKey, step: int, request: LLMRequest) -> None:
        previous = self._entries.pop(run, None)
        if previous is not None:
            self._bytes -= previous.size
        same_tools = previous is not None and request.tools is previous.tools
        tools = request.tools if same_tools else self._shared(request.tools)
        size = sum(_size(message) for message in request.messages)
        self._entries[run] = _Conversation(step, request.messages, tools, size)
        self._bytes += size
        while self._bytes > self._max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.size

    def _shared(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        key = json.dumps(tools, sort_keys=True)
        shared = self._tool_sets.pop(key, tools)
        self._tool_sets[key] = shared
        while len(self._tool_sets) > TOOL_SETS_KEPT:
            self._tool_sets.popitem(last=False)
        return shared


class Conversations:
    """Where `chat_completion_delta` gets the whole request: this worker's cache, else the run."""

    def __init__(self, cache: ConversationCache | None = None) -> None:
        self.cache = cache or ConversationCache()

    async def request(self, delta: LLMDeltaRequest) -> LLMRequest:
        info = activity.info()
        assert info.workflow_id is not None and info.workflow_run_id is not None, "scheduled by a workflow"
        run = (info.workflow_id, info.workflow_run_id)
        request = self.cache.resolve(run, delta)
        if request is None:
            request = await self._ask_run(run, delta)
        self.cache.store(run, delta.step, request)
        return request

    async def _ask_run(self, run: RunKey, delta: LLMDeltaRequest) -> LLMRequest:
        workflow_id, run_id = run
        handle = activity.client().get_workflow_handle(workflow_id, run_id=run_id)
        request = await handle.query(CONVERSATION_QUERY, result_type=LLMRequest)
        if len(request.messages) != delta.length():
            # The run has moved on (this attempt is stale): retrying finds out for certain.
            raise ApplicationError(
                f"the run's conversation has {len(request.messages)} messages, this call expected {delta.length()}",
                type="ConversationMismatch",
            )
        activity.logger.info("conversation of %s fetched from the run (%d messages)", workflow_id, delta.length())
        return request.model_copy(update={"model": delta.model})
