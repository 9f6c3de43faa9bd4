"""How tools are offered to the model, and turning the model's tool calls into calls the run can
decide on: pure, deterministic code."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from referencing import exceptions as referencing_exceptions

from workflows.activity_io import CatalogTool, ToolCatalog
from workflows.chat_messages import LLMToolCall
from workflows.limits import arguments_problem
from workflows.state import ToolCallRecord

TOOL_CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""The ids a run keeps as the model sent them; others are replaced (they are pasted into commands)."""


def unique_tool_call_ids(calls: list[LLMToolCall], used: set[str], llm_step: int) -> list[LLMToolCall]:
    """`calls` with ids no other call of the run has, whatever the model sent.

    A decision names its call by id, so an id must never point at two calls: a missing id,
    one repeated within the reply or from an earlier step (endpoints that number calls per
    reply), or one that is overlong or holds other characters than letters, digits and
    `_.:-` is replaced by `call_<llm step>_<position>` (with a suffix if even that is taken)."""
    taken = set(used)
    unique: list[LLMToolCall] = []
    for position, call in enumerate(calls):
        call_id = call.id
        if call_id in taken or not TOOL_CALL_ID.fullmatch(call_id):
            base = call_id = f"call_{llm_step}_{position}"
            suffix = 1
            while call_id in taken:
                suffix += 1
                call_id = f"{base}_{suffix}"
        taken.add(call_id)
        unique.append(call if call_id == call.id else call.model_copy(update={"id": call_id}))
    return unique


MODEL_INTENT_DESCRIPTION = "One sentence: why you are calling this tool and what you expect."


def openai_tool(tool: CatalogTool) -> dict[str, Any]:
    """`tool` in OpenAI's `tools` format; with model intent on, its arguments are wrapped as
    `{"model_intent": ..., "properties": {...}}` (what `unwrap_model_intent` reads back)."""
    parameters = tool.input_schema
    if tool.model_intent:
        parameters = {
            "type": "object",
            "properties": {
                "model_intent": {"type": "string", "description": MODEL_INTENT_DESCRIPTION},
                "properties": tool.input_schema,
            },
            "required": ["model_intent", "properties"],
        }
    return {
        "type": "function",
        "function": {"name": tool.function_name, "description": tool.description, "parameters": parameters},
    }


def unwrap_model_intent(arguments: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Split the model's arguments into the tool's own arguments and its stated intent.

    Accepts the wrapped shape `{"model_intent": ..., "properties": {...}}` that the model is
    shown, the flat shape (`model_intent` beside the real arguments) that models often
    produce anyway, and malformed shapes: `properties` given as a JSON string or null, or
    the intent missing or not a string.
    """
    remaining = dict(arguments)
    raw_intent = remaining.pop("model_intent", None)
    intent: str | None
    if isinstance(raw_intent, str):
        intent = raw_intent.strip() or None
    else:
        intent = None if raw_intent is None else json.dumps(raw_intent)
    if "properties" in remaining and set(remaining) == {"properties"}:
        inner = remaining["properties"]
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError:
                inner = None
        if inner is None:
            return {}, intent
        if isinstance(inner, dict):
            return inner, intent
    return remaining, intent


def definition_hash(description: str, input_schema: dict[str, Any]) -> str:
    """Fingerprint of a tool's definition as the model saw it (description and input schema)."""
    return _sha256({"description": description, "input_schema": input_schema})


def approval_hash(server: str, tool: str, arguments: dict[str, Any], tool_definition_hash: str) -> str:
    """What a person approves: this server, this tool, these arguments, this tool definition."""
    return _sha256({"server": server, "tool": tool, "arguments": arguments, "definition": tool_definition_hash})


def _sha256(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def open_tool_call(
    call: LLMToolCall,
    catalog: ToolCatalog,
    index: int,
    step: int,
    *,
    validate_arguments: bool = True,
    bound_arguments: bool = True,
) -> ToolCallRecord:
    """The record of one tool call (the run's `index`-th step, asked for by LLM call `step`),
    resolved against the run's catalog; a call that cannot run has a `problem`, an error for
    the model.

    The arguments must match the tool's input schema as pinned at run start, exactly (no
    coercion: `"100000"` is not a number) before any policy looks at them: a call that does
    not is never run, never shown for approval and never matched against a rule.
    Arguments over MAX_ARGUMENTS_BYTES are refused the same way. `validate_arguments` and
    `bound_arguments` are off only when replaying runs recorded before those checks existed."""
    opened = ToolCallRecord(index=index, step=step, tool_call_id=call.id, function_name=call.function.name)
    problem = _resolve(opened, call, catalog, validate_arguments=validate_arguments, bound_arguments=bound_arguments)
    if problem is not None:
        opened.refuse(problem)
    return opened


def _resolve(
    opened: ToolCallRecord, call: LLMToolCall, catalog: ToolCatalog, *, validate_arguments: bool, bound_arguments: bool
) -> str | None:
    """Fill in `opened` from the catalog and the arguments; why it cannot run, or None."""
    tool = catalog.by_function_name(call.function.name)
    if tool is None:
        return f"unknown tool {call.function.name!r}; use one of the tools you were given"
    opened.server, opened.tool = tool.server, tool.tool
    opened.auto_execute, opened.price_usd = tool.auto_execute, tool.price_usd
    raw = call.function.arguments.strip() or "{}"
    try:
        arguments = json.loads(raw)
    except ValueError as err:
        return f"arguments are not valid JSON ({err}); send a JSON object"
    except RecursionError:
        return "arguments are nested too deeply; send a flatter JSON object"
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    if tool.model_intent:
        arguments, opened.intent = unwrap_model_intent(arguments)
    too_large = arguments_problem(arguments) if bound_arguments else None
    if too_large is not None:
        return f"{too_large}; send smaller arguments"
    opened.arguments = arguments
    if validate_arguments:
        problem = schema_problem(tool.input_schema, arguments)
        if problem is not None:
            return f"arguments do not match the input schema of {tool.function_name}: {problem}"
    if not tool.auto_execute:
        opened.rule = next(
            (rule.name for rule in tool.auto_approve_rules if schema_problem(rule.arguments, arguments) is None), None
        )
        opened.auto_execute = opened.rule is not None
    opened.definition_hash = tool.definition_hash
    opened.approval_hash = approval_hash(tool.server, tool.tool, arguments, tool.definition_hash)
    return None


def schema_problem(schema: dict[str, Any], instance: Any) -> str | None:
    """Why `instance` does not match the JSON Schema `schema` (the first error), or None.

    Never raises: the schemas come from MCP servers, and an exception here would fail the
    workflow task over and over instead of answering the model."""
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
        if isinstance(validator, str):
            return validator
        error = jsonschema_exceptions.best_match(validator.iter_errors(instance))
    except (referencing_exceptions.Unresolvable, re.error) as err:
        return f"the schema cannot be used: {err}"
    except RecursionError:
        return "the value is nested too deeply to check"
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A checked validator for a schema (as canonical JSON), or why the schema is invalid: a
    run's tools are checked once, not at every call (the check is most of the cost)."""
    schema = json.loads(schema_json)
    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema_exceptions.SchemaError as err:
        return f"the schema is invalid: {err.message}"
    return validator_class(schema)


def model_arguments_text(arguments: dict[str, Any], intent: str | None, model_intent: bool) -> str:
    """Arguments as the model writes them (wrapped with its intent when the tool asks for one)."""
    if model_intent:
        return json.dumps({"model_intent": intent or "", "properties": arguments})
    return json.dumps(arguments)
