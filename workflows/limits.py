"""Bounds on what enters a run's state, and on each payload the run builds from that state.

Temporal refuses a payload (an activity input, the run's result, the next run's input) over
2 MiB and a memo over 2 MiB; a workflow task whose commands carry one fails again and again,
and the run never ends. So every string a person or a client puts into a run has a bound
(the message models refuse more: 422 at the API, a dropped signal in Temporal), and every
payload the workflow builds from its state is measured before it is sent: shortened to
previews where a preview will do (the memo, the result, webhooks), or the run fails with a
clear error where none will (the conversation for the next LLM call, the next run's input).
Pure and deterministic: the workflow calls these functions.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import pydantic_core
from pydantic import Field

if TYPE_CHECKING:
    from workflows.messages import OrchestrationStatus, RunEvent, StepRecord
    from workflows.state import ToolCallRecord

MAX_REASON_CHARS = 2000
MAX_METADATA_ENTRIES = 50
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_ARGUMENTS_BYTES = 64 * 1024
"""A tool call's arguments as JSON, whether the model wrote them or an approver edited them."""
MAX_ARGUMENTS_DEPTH = 64
"""Lists and objects nested deeper in arguments are refused (Temporal's converter cannot
serialise much deeper data, and a run holding it could never be saved)."""

PAYLOAD_BUDGET_BYTES = 1536 * 1024
"""What the workflow puts in one payload: under Temporal's 2 MiB, with room for the codec."""
MEMO_STATUS_BUDGET_BYTES = 640 * 1024
MEMO_EVENTS_BUDGET_BYTES = 640 * 1024
"""The memo holds a finished run's status and events; together under Temporal's 2 MiB memo limit."""
EVENT_OUTPUT_PREVIEW_CHARS = 16 * 1024
"""A final event carries the run's output up to this many characters (the status has all of it)."""
TOOLS_LISTED_BUDGET_BYTES = 64 * 1024
"""A `tools_listed` event carries the pinned tools' input schemas up to this size together."""
IGNORED_DECISIONS_KEPT = 50
"""Decisions that named no waiting call, kept for the audit (the newest)."""
MAX_ERROR_CHARS = 4000
"""A provider's or tool server's error message, as the run records it."""
ARGUMENTS_PREVIEW_CHARS = 500

MAX_NAME_CHARS = 200
"""A model name, an MCP server name, an approver."""
MAX_SERVERS_NAMED = 100

ModelName = Annotated[str | None, Field(min_length=1, max_length=MAX_NAME_CHARS)]
ServerNames = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]] | None,
    Field(max_length=MAX_SERVERS_NAMED),
]
Reason = Annotated[str | None, Field(max_length=MAX_REASON_CHARS)]
Approver = Annotated[str | None, Field(max_length=MAX_NAME_CHARS)]
Metadata = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY_CHARS)],
        Annotated[str, Field(max_length=MAX_METADATA_VALUE_CHARS)],
    ],
    Field(
        max_length=MAX_METADATA_ENTRIES,
        description=f"At most {MAX_METADATA_ENTRIES} entries; keys up to {MAX_METADATA_KEY_CHARS} characters, "
        f"values up to {MAX_METADATA_VALUE_CHARS}.",
    ),
]


def json_bytes(value: Any) -> int:
    """The size of `value` (models, plain data, or lists of them) as compact JSON."""
    return len(pydantic_core.to_json(value))


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists and dicts nest in `value`, counted up to just past `limit` (without
    recursion: the value may come from anyone)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and deepest <= limit:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def arguments_problem(arguments: Any) -> str | None:
    """Why `arguments` cannot be carried in a run (too deep or too large), or None."""
    if nesting_depth(arguments, MAX_ARGUMENTS_DEPTH) > MAX_ARGUMENTS_DEPTH:
        return f"arguments are nested too deeply (over {MAX_ARGUMENTS_DEPTH} levels)"
    size = json_bytes(arguments)
    if size > MAX_ARGUMENTS_BYTES:
        return f"arguments are {size} bytes; the limit is {MAX_ARGUMENTS_BYTES}"
    return None


def preview(text: str, chars: int) -> str:
    """`text`, or its first `chars` characters and how much was left out."""
    if len(text) <= chars:
        return text
    return f"{text[:chars]}… [{len(text) - chars} more characters]"


def arguments_preview(arguments: dict[str, Any] | None, original: dict[str, Any] | None) -> str | None:
    """What to show in place of `arguments` (and the `original` ones) when they are large, or None."""
    if arguments is None or json_bytes([arguments, original]) <= ARGUMENTS_PREVIEW_CHARS:
        return None
    return preview(json.dumps(arguments), ARGUMENTS_PREVIEW_CHARS)


def shorten_steps(steps: list[StepRecord]) -> None:
    """Put a preview in place of the large arguments of finished steps (a waiting call keeps
    its arguments: the approver must see them whole)."""
    for step in steps:
        if step.status in ("pending", "waiting_for_approval") or step.arguments_preview is not None:
            continue
        step.arguments_preview = arguments_preview(step.arguments, step.original_arguments)
        if step.arguments_preview is not None:
            step.arguments = step.original_arguments = None


def shorten_settled_calls(calls: list[ToolCallRecord]) -> None:
    """Put a preview in place of the large arguments of calls that have their result (a call
    still to be decided or run keeps them)."""
    for call in calls:
        if (call.result is None and not call.answered) or call.arguments_preview is not None:
            continue
        call.arguments_preview = arguments_preview(call.arguments, call.original_arguments)
        if call.arguments_preview is not None:
            call.arguments, call.original_arguments = {}, None


def fitted_status(status: OrchestrationStatus, budget: int) -> OrchestrationStatus:
    """`status` itself when its JSON fits in `budget` bytes; otherwise a `shortened` copy:
    previews for large arguments, a cut output and, last, only the newest steps, until it fits."""
    if json_bytes(status) <= budget:
        return status
    fitted = status.model_copy(deep=True)
    fitted.shortened = True
    shorten_steps(fitted.steps)
    while (excess := json_bytes(fitted) - budget) > 0 and fitted.output:
        # Each character left out saves at least one byte; the note about it costs a few.
        fitted.output = preview(status.output or "", max(0, len(fitted.output) - excess - 64))
        if len(fitted.output) <= 64:
            break
    while json_bytes(fitted) > budget and fitted.steps:
        fitted.steps = fitted.steps[(len(fitted.steps) + 1) // 2 :]
    return fitted


def fitted_events(events: list[RunEvent], budget: int) -> list[RunEvent]:
    """The newest of `events` whose JSON fits in `budget` bytes together (the newest always)."""
    kept = 0
    total = 0
    for event in reversed(events):
        total += json_bytes(event)
        if total > budget and kept:
            break
        kept += 1
    return events[len(events) - kept :]
