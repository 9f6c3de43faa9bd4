"""The workflows' patches (`workflow.patched`), in one place: each names a change of behaviour,
and a run replays the side of it its history recorded.

Every patch records a marker and an update of the `TemporalChangeVersion` search attribute, two
events per patch per run. A run started now records `BASELINE` alone, which stands for every patch
listed before it; runs from before it replay each patch as they recorded it.
"""

from __future__ import annotations

from temporalio import workflow

PREFIXED_ACTIVITY_NAMES = "prefixed-activity-names"
"""Runs from before this patch scheduled their activities by their bare names."""
ARGUMENTS_VALIDATED = "arguments-validated-against-input-schema"
"""Runs from before this patch opened tool calls without checking the arguments against the
tool's input schema."""
UNIQUE_TOOL_CALL_IDS = "unique-tool-call-ids"
"""Runs from before this patch kept the model's tool-call ids even when they repeated."""
ARGUMENTS_BOUNDED = "arguments-bounded"
"""Runs from before this patch ran tool calls whatever the size of their arguments."""
CONVERSATION_DELTA = "llm-conversation-delta"
"""Runs from before this patch sent every LLM call the whole conversation (`chat_completion`)."""
LOCAL_TOOL_CALLS = "tool-calls-local"
"""Runs from before this patch ran every tool call as an activity."""
CONTINUE_AS_NEW_BY_COUNT = "continue-as-new-by-count"
"""Runs from before this patch also continued as new when the server suggested it (at 4 MB of
history on a default server), not only at their event count."""

BASELINE = "baseline-2026-11"
"""Recorded by every run started since: it has every patch above."""
IN_BASELINE = frozenset(
    {
        PREFIXED_ACTIVITY_NAMES,
        ARGUMENTS_VALIDATED,
        UNIQUE_TOOL_CALL_IDS,
        ARGUMENTS_BOUNDED,
        CONVERSATION_DELTA,
        LOCAL_TOOL_CALLS,
        CONTINUE_AS_NEW_BY_COUNT,
    }
)


def patched(patch: str) -> bool:
    """Whether this run takes the patched side of `patch` (one of the names above)."""
    assert patch in IN_BASELINE, f"{patch} is not covered by {BASELINE}"
    return workflow.patched(BASELINE) or workflow.patched(patch)
