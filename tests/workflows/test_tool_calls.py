"""Parsing the model's tool calls (pure functions used by the workflow)."""

from __future__ import annotations

import json

import pytest

from workflows.activity_io import ApprovalRule, CatalogTool, ToolCatalog
from workflows.chat_messages import FunctionCall, LLMToolCall
from workflows.tool_calls import (
    model_arguments_text,
    open_tool_call,
    openai_tool,
    unique_tool_call_ids,
    unwrap_model_intent,
)


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
    return ToolCatalog(tools=[tool])


def _call(name: str, arguments: str) -> LLMToolCall:
    return LLMToolCall(id="c", function=FunctionCall(name=name, arguments=arguments))


def test_open_tool_call_reports_problems_for_the_model() -> None:
    assert "unknown tool" in (open_tool_call(_call("x__y", "{}"), _catalog(), 0, 1).problem or "")
    assert "not valid JSON" in (open_tool_call(_call("s__t", "{oops"), _catalog(), 0, 1).problem or "")
    assert "JSON object" in (open_tool_call(_call("s__t", "[1]"), _catalog(), 0, 1).problem or "")
    ok = open_tool_call(_call("s__t", ""), _catalog(), 3, 1)
    assert ok.problem is None and ok.arguments == {} and ok.index == 3


def test_open_tool_call_unwraps_intent_only_when_enabled() -> None:
    wrapped = '{"model_intent": "why", "properties": {"a": 1}}'
    assert open_tool_call(_call("s__t", wrapped), _catalog(model_intent=True), 0, 1).arguments == {"a": 1}
    assert open_tool_call(_call("s__t", wrapped), _catalog(), 0, 1).arguments["properties"] == {"a": 1}


def test_the_model_is_offered_the_wrapped_schema_it_is_read_back_with() -> None:
    [plain], [with_intent] = _catalog().tools, _catalog(model_intent=True).tools
    assert openai_tool(plain)["function"]["parameters"] == plain.input_schema
    parameters = openai_tool(with_intent)["function"]["parameters"]
    assert parameters["required"] == ["model_intent", "properties"]
    assert parameters["properties"]["properties"] == with_intent.input_schema
    written = model_arguments_text({"a": 1}, "why", model_intent=True)
    assert unwrap_model_intent(json.loads(written)) == ({"a": 1}, "why")


def _typed_catalog(input_schema: dict, rule: dict | None = None) -> ToolCatalog:
    rules = [ApprovalRule(name="r", arguments=rule)] if rule is not None else []
    tool = CatalogTool(server="s", tool="t", function_name="s__t", input_schema=input_schema, auto_approve_rules=rules)
    return ToolCatalog(tools=[tool])


AMOUNT = {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}


def test_arguments_must_match_the_input_schema_before_a_rule_sees_them() -> None:
    catalog = _typed_catalog(AMOUNT, rule={"properties": {"amount": {"maximum": 100}}})
    confused = open_tool_call(_call("s__t", '{"amount": "100000"}'), catalog, 0, 1)
    assert confused.problem == (
        "arguments do not match the input schema of s__t: amount: '100000' is not of type 'number'"
    )
    assert confused.rule is None and not confused.auto_execute
    small = open_tool_call(_call("s__t", '{"amount": 50}'), catalog, 0, 1)
    assert small.problem is None and small.rule == "r" and small.auto_execute
    replayed = open_tool_call(_call("s__t", '{"amount": "100000"}'), catalog, 0, 1, validate_arguments=False)
    assert replayed.problem is None, "runs recorded before the check replay as they ran"


@pytest.mark.parametrize(
    ("input_schema", "arguments", "problem"),
    [
        ({"properties": {"a": {"pattern": "(("}}}, '{"a": "x"}', "the schema is invalid"),
        ({"$ref": "https://example.invalid/schema.json"}, "{}", "the schema cannot be used"),
        ({"properties": {"a": {"$ref": "#"}}}, '{"a": ' * 400 + "{}" + "}" * 400, "nested too deeply"),
        ({"type": "object"}, '{"a": ' * 100_000 + "{}" + "}" * 100_000, "nested too deeply"),
    ],
)
def test_a_schema_or_arguments_that_cannot_be_checked_are_a_problem_not_an_exception(
    input_schema: dict, arguments: str, problem: str
) -> None:
    opened = open_tool_call(_call("s__t", arguments), _typed_catalog(input_schema), 0, 1)
    assert problem in (opened.problem or "")


def _calls(*ids: str) -> list[LLMToolCall]:
    return [LLMToolCall(id=call_id, function=FunctionCall(name="s__t", arguments="{}")) for call_id in ids]


@pytest.mark.parametrize(
    ("ids", "used", "expected"),
    [
        (["call_0", "call_1"], {"call_0"}, ["call_3_0", "call_1"]),  # repeated from an earlier step
        (["a", "a"], set(), ["a", "call_3_1"]),  # repeated within the reply
        (["x; rm -rf ~"], set(), ["call_3_0"]),  # pasted into shell commands: never kept
        (["c" * 65], set(), ["call_3_0"]),  # overlong
        ([""], set(), ["call_3_0"]),
        (["call_0"], {"call_0", "call_3_0"}, ["call_3_0_2"]),  # even the replacement is taken
        (["call_abc.1:x-y"], {"other"}, ["call_abc.1:x-y"]),  # kept as sent
    ],
)
def test_tool_call_ids_are_unique_within_the_run(ids: list[str], used: set[str], expected: list[str]) -> None:
    assert [call.id for call in unique_tool_call_ids(_calls(*ids), used, llm_step=3)] == expected
