"""The worker's cache of each run's conversation: what a delta stands for, and when it cannot tell."""

from __future__ import annotations

from activities.conversations import ConversationCache
from workflows.activity_io import LLMDeltaRequest, LLMRequest
from workflows.chat_messages import ChatMessage

RUN = ("orch-1", "run-a")
TOOLS = [{"type": "function", "function": {"name": "toolbox__echo", "parameters": {}}}]


def _message(role: str, text: str) -> ChatMessage:
    return ChatMessage(role=role, content=text, tool_call_id="c" if role == "tool" else None)  # type: ignore[arg-type]


def _first(cache: ConversationCache) -> LLMRequest:
    delta = LLMDeltaRequest(model="m", step=1, base_length=0, appended=[_message("user", "go")], tools=TOOLS)
    request = cache.resolve(RUN, delta)
    assert request is not None
    cache.store(RUN, 1, request)
    return request


def test_the_first_call_of_a_run_carries_everything() -> None:
    request = _first(ConversationCache())
    assert request.messages == [_message("user", "go")] and request.tools == TOOLS


def test_a_later_call_is_the_kept_conversation_plus_what_changed() -> None:
    cache = ConversationCache()
    _first(cache)
    delta = LLMDeltaRequest(
        model="m",
        step=2,
        base_length=1,
        edited={0: _message("user", "go (edited)")},
        appended=[_message("assistant", "calling"), _message("tool", "x" * 100)],
    )
    request = cache.resolve(RUN, delta)
    assert request is not None
    assert [m.content for m in request.messages] == ["go (edited)", "calling", "x" * 100]
    assert request.tools == TOOLS, "tools are kept from the run's first call"


def test_a_retry_of_the_same_call_is_answered_from_the_cache() -> None:
    cache = ConversationCache()
    _first(cache)
    delta = LLMDeltaRequest(model="m", step=2, base_length=1, appended=[_message("assistant", "a")])
    request = cache.resolve(RUN, delta)
    assert request is not None
    cache.store(RUN, 2, request)
    assert cache.resolve(RUN, delta) == request


def test_the_cache_cannot_tell_another_run_a_gap_or_a_different_length() -> None:
    cache = ConversationCache()
    _first(cache)
    appended = [_message("assistant", "a")]
    assert (
        cache.resolve(("orch-1", "run-b"), LLMDeltaRequest(model="m", step=2, base_length=1, appended=appended)) is None
    )
    assert cache.resolve(RUN, LLMDeltaRequest(model="m", step=3, base_length=1, appended=appended)) is None
    assert cache.resolve(RUN, LLMDeltaRequest(model="m", step=2, base_length=4, appended=appended)) is None


def test_least_recently_used_conversations_are_dropped_beyond_the_budget() -> None:
    cache = ConversationCache(max_bytes=3500)  # two conversations of one 1,000-character message
    for index in range(3):
        run = (f"orch-{index}", "r")
        delta = LLMDeltaRequest(model="m", step=1, base_length=0, appended=[_message("user", "x" * 1000)], tools=[])
        request = cache.resolve(run, delta)
        assert request is not None
        cache.store(run, 1, request)
    assert len(cache) == 2
    later = LLMDeltaRequest(model="m", step=2, base_length=1, appended=[])
    assert cache.resolve(("orch-0", "r"), later) is None
    assert cache.resolve(("orch-2", "r"), later) is not None


def test_runs_offered_the_same_tools_share_one_copy() -> None:
    cache = ConversationCache()
    for run in (("orch-a", "r"), ("orch-b", "r")):
        delta = LLMDeltaRequest(model="m", step=1, base_length=0, appended=[_message("user", "go")], tools=list(TOOLS))
        request = cache.resolve(run, delta)
        assert request is not None
        cache.store(run, 1, request)
    later = LLMDeltaRequest(model="m", step=2, base_length=1, appended=[])
    first, second = cache.resolve(("orch-a", "r"), later), cache.resolve(("orch-b", "r"), later)
    assert first is not None and second is not None and first.tools is second.tools
