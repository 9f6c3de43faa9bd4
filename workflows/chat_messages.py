"""OpenAI chat messages, as the model and the chat route speak them: what a run's conversation
is made of (`ChatMessage`) and the tool calls a model asks for."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class FunctionCall(BaseModel):
    """The function part of an OpenAI tool call; `arguments` is the model's raw JSON text."""

    name: str
    arguments: str = ""


class LLMToolCall(BaseModel):
    """One tool call as the model asked for it."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """An OpenAI chat message. Unknown fields (e.g. `refusal`) are kept as given."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[LLMToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str | None:
        """The content as text (the text parts of a list of parts, joined)."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content)
        return self.content
