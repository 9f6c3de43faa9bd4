"""The conversation kept within its byte budget: oldest tool outputs elided first."""

from __future__ import annotations

from workflows.chat_messages import ChatMessage
from workflows.context import ELIDED_PREFIX, ConversationBudget, conversation_bytes, fit_to_budget


def _conversation(outputs: int, size: int) -> list[ChatMessage]:
    messages = [ChatMessage(role="user", content="go")]
    for index in range(outputs):
        messages.append(ChatMessage(role="assistant", content=None))
        messages.append(ChatMessage(role="tool", tool_call_id=f"c{index}", content=str(index) * size))
    return messages


def test_oldest_tool_outputs_are_elided_until_it_fits() -> None:
    messages = _conversation(10, 8192)
    assert len(fit_to_budget(messages, 40_000)) == 6
    assert conversation_bytes(messages) <= 40_000
    tools = [m.content for m in messages if m.role == "tool"]
    for index, text in enumerate(tools[:6]):
        assert text == f"{ELIDED_PREFIX}8192 bytes; it began] {str(index) * 200}"
    assert tools[6:] == [str(i) * 8192 for i in range(6, 10)], "the newest outputs are kept whole"
    assert messages[0].content == "go"


def test_within_budget_nothing_changes_and_eliding_twice_changes_nothing() -> None:
    messages = _conversation(3, 1000)
    assert fit_to_budget(messages, 1_000_000) == []
    messages = _conversation(10, 8192)
    fit_to_budget(messages, 40_000)
    snapshot = [m.model_copy() for m in messages]
    assert fit_to_budget(messages, 40_000) == [] and messages == snapshot


def test_a_conversation_of_only_big_user_messages_is_left_as_it_is() -> None:
    messages = [ChatMessage(role="user", content="x" * 50_000)]
    assert fit_to_budget(messages, 20_000) == [] and messages[0].content == "x" * 50_000


def test_a_growing_conversation_fitted_at_each_step_ends_as_if_fitted_whole() -> None:
    """The workflow's budget measures each message once and resumes where it stopped; the
    result is the same as fitting the whole conversation at each step from scratch."""
    budget = ConversationBudget(40_000)
    growing: list[ChatMessage] = []
    for messages in (_conversation(outputs, 8192) for outputs in range(1, 15)):
        growing += [m.model_copy() for m in messages[len(growing) :]]
        budget.fit(growing)
        expected = [m.model_copy() for m in messages]
        fit_to_budget(expected, 40_000)
        assert growing == expected
        assert budget.bytes == conversation_bytes(growing)
