"""What the API, the CLI and the worker agree on about the workflows, by name: the workflow
types, the Orchestration's signal, updates and queries, its search attributes, and the error
types its updates refuse a decision with. The API and the CLI call the workflows through these
names and never import the workflow code; the workflow declares its handlers with them.

The payloads are the models in `workflows.messages`.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORCHESTRATION_WORKFLOW = "Orchestration"
"""One run of the agent loop; input `OrchestrationInput`, result `OrchestrationStatus`."""
LIST_TOOLS_WORKFLOW = "ListTools"
"""The configured MCP tools and their policy, listed on a worker; input `ListToolsInput`,
result `ToolListing`."""

ACTIVITY_PREFIX = "orch."
"""Every activity's name starts with it, so it cannot clash with another service's on a shared
task queue. Runs from before the prefix scheduled the bare names: workers register both, and
such runs replay with the bare ones (`workflows.options.activity_name`)."""
PREPARE_RUN_ACTIVITY = "orch.prepare_run"
"""`PrepareRunInput` -> `PreparedRun`: list the run's MCP tools and resolve their policy, with the worker's defaults."""
CHAT_COMPLETION_ACTIVITY = "orch.chat_completion"
"""`LLMRequest` -> `LLMReply`: one OpenAI-compatible chat completion."""
CHAT_COMPLETION_DELTA_ACTIVITY = "orch.chat_completion_delta"
"""`LLMDeltaRequest` -> `LLMReply`: the same chat completion, sent only what changed in the run's
conversation since its previous call; the activity's worker keeps the rest, or asks the run for it
(`CONVERSATION_QUERY`). A separate name, so that a worker too old to know the form refuses it
instead of sending the model half a conversation."""
CALL_TOOL_ACTIVITY = "orch.call_tool"
"""`ToolCallInput` -> `ToolCallOutput`: one MCP tool call."""
DESCRIBE_TOOLS_ACTIVITY = "orch.describe_tools"
"""`ListToolsInput` -> `ToolListing`: every configured server's tools, for `GET /v1/tools`."""
DELIVER_WEBHOOK_ACTIVITY = "orch.deliver_webhook"
"""`WebhookEvent` -> None: one signed webhook delivery."""
GET_TASK_ACTIVITY = "orch.get_task"
"""`TaskRequest` -> `ServerTask`: `tasks/get` of an MCP task a tool call answered with."""
UPDATE_TASK_ACTIVITY = "orch.update_task"
"""`TaskRequest` -> None: `tasks/update`, the answers to an `input_required` task."""
CANCEL_TASK_ACTIVITY = "orch.cancel_task"
"""`TaskRequest` -> None: `tasks/cancel`."""
ACTIVITIES_BEFORE_PREFIX = (
    PREPARE_RUN_ACTIVITY,
    CHAT_COMPLETION_ACTIVITY,
    CALL_TOOL_ACTIVITY,
    DESCRIBE_TOOLS_ACTIVITY,
    DELIVER_WEBHOOK_ACTIVITY,
)
"""The activities that existed before the prefix: workers also register them by their bare names."""
ACTIVITIES = (
    *ACTIVITIES_BEFORE_PREFIX,
    CHAT_COMPLETION_DELTA_ACTIVITY,
    GET_TASK_ACTIVITY,
    UPDATE_TASK_ACTIVITY,
    CANCEL_TASK_ACTIVITY,
)

SUBMIT_APPROVAL_SIGNAL = "submit_approval"
"""`ApprovalDecision`; a decision that does not apply is ignored and recorded."""
DECIDE_UPDATE = "decide"
"""`ApprovalDecision` -> `OrchestrationStatus`; a decision that does not apply is refused with
one of the error types below."""
DECIDE_MANY_UPDATE = "decide_many"
"""`DecisionBatch` -> `OrchestrationStatus`, all or none."""
SUBMIT_INPUT_SIGNAL = "submit_input"
"""`InputAnswer`: answer what a server asks in the middle of a tool call; one that does not
apply is ignored and recorded."""
ANSWER_INPUT_UPDATE = "answer_input"
"""`InputAnswer` -> `OrchestrationStatus`; refused with one of the decision error types below."""
TOOL_PROGRESS_SIGNAL = "tool_progress"
"""`ToolProgress`: sent by the worker running a tool call (throttled); shown in the run's events."""
STATUS_QUERY = "status"
"""-> `OrchestrationStatus`."""
EVENTS_QUERY = "events"
"""`EventsQuery` -> `EventsPage`."""
HISTORY_QUERY = "history"
"""-> `RunHistory`: the run's conversation without its instructions (what a Responses API follow-up
continues from)."""
CONVERSATION_QUERY = "conversation"
"""-> `LLMRequest`: the request of the run's LLM call in flight, whole (what a worker that lacks
the conversation of an `LLMDeltaRequest` asks for)."""

DECISION_UNKNOWN_CALL = "UnknownToolCall"
DECISION_ALREADY_MADE = "AlreadyDecided"
DECISION_MISMATCH = "ApprovalMismatch"
DECISION_INVALID = "InvalidDecision"
INPUT_UNKNOWN = "UnknownInput"
INPUT_ALREADY_ANSWERED = "AlreadyAnswered"
INPUT_INVALID = "InvalidAnswer"
RUN_FAILED = "OrchestrationFailed"
"""The error type of a run that failed (its details: the run's status)."""
TIMED_OUT_APPROVER = "system"
"""Who the audit says denied a call nobody decided in time; no API key may have this name."""
RULE_APPROVER_PREFIX = "rule:"
"""The audit names a call an auto-approval rule admitted as approved by `rule:<rule name>`; no
API key's name starts with it."""
WEBHOOK_APPROVER_PREFIX = "webhook/"
"""Recorded before the approver a signed webhook names (`webhook/erp`; `webhook/` when it names
none). API key names cannot contain "/", so a webhook never records the name of a key, a rule
or the approval timeout."""

INVALID_REQUEST = "InvalidRequest"
"""The error type of a run whose request cannot run (e.g. no user message)."""
INVALID_PAYLOAD = "InvalidPayload"
"""The error type of a payload that does not fit its model: a run's input fails the run, an
update's argument is rejected."""

ORCHESTRATION_STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("OrchestrationStatus")
"""Custom search attribute kept equal to the run's status, for listing and filtering."""
ORCHESTRATION_OWNER_ATTRIBUTE = SearchAttributeKey.for_keyword("OrchestrationOwner")
"""Custom search attribute: the API key that started the run (set at start when keys are on)."""
SEARCH_ATTRIBUTES = (ORCHESTRATION_STATUS_ATTRIBUTE, ORCHESTRATION_OWNER_ATTRIBUTE)
"""Both are Keyword attributes to register on the namespace."""
