"""Parsing the model's tool calls (pure functions used by the workflow)."""

from __future__ import annotations

import pytest

from workflows.messages import CatalogTool, FunctionCall, LLMToolCall, ToolCatalog
from workflows.tool_calls import open_tool_call, unwrap_model_intent


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"model_intent": "why", "properties": {"a": 1}}, ({"a": 1}, "why")),  # wrapped
        ({"model_intent": "why", "a": 1}, ({"a": 1}, "why")),  # flat
        ({"a": 1}, ({"a": 1}, None)),  # flat without intent
        ({"model_intent": "why", "properties": '{"a": 1}'}, ({"a": 1}, "why")),  # stringified
        ({"model_intent": "why", "properties": None}, ({}, "why")),  # null properties
        ({"properties": {"a": 1}}, ({"a": 1}, None)),  # wrapped without intent
        ({"model_intent": {"x": 1}, "a": 1}, ({"a": 1}, '{"x": 1}')),  # intent not a string
        ({"model_intent": "  ", "properties": "not json"}, ({}, None)),  # garbage
    ],
)
def test_unwrap_model_intent_accepts_every_shape(arguments: dict, expected: tuple) -> None:
    assert unwrap_model_intent(arguments) == expected


def _catalog(model_intent: bool = False) -> ToolCatalog:
    tool = CatalogTool(
        server="s", tool="t", function_name="s__t", input_schema={"type": "object"}, model_intent=model_intent
    )
    return ToolCatalog(default_model="m", tools=[tool])


def _call(name: str, arguments: str) -> LLMToolCall:
    return LLMToolCall(id="c", function=FunctionCall(name=name, arguments=arguments))


def test_open_tool_call_reports_problems_for_the_model() -> None:
    assert "unknown tool" in (open_tool_call(_call("x__y", "{}"), _catalog(), 0).problem or "")
    assert "not valid JSON" in (open_tool_call(_call("s__t", "{oops"), _catalog(), 0).problem or "")
    assert "JSON object" in (open_tool_call(_call("s__t", "[1]"), _catalog(), 0).problem or "")
    ok = open_tool_call(_call("s__t", ""), _catalog(), 3)
    assert ok.problem is None and ok.arguments == {} and ok.step_index == 3


def test_open_tool_call_unwraps_intent_only_when_enabled() -> None:
    wrapped = '{"model_intent": "why", "properties": {"a": 1}}'
    assert open_tool_call(_call("s__t", wrapped), _catalog(model_intent=True), 0).arguments == {"a": 1}
    assert open_tool_call(_call("s__t", wrapped), _catalog(), 0).arguments["properties"] == {"a": 1}
