"""A run as OpenAI Responses: which stretch of a run one response is (its id), its output items,
status and usage, and the stream events that tell them as they happen, all read from the run's
event log (`workflows/events.py`).

A response covers one run from its start, or from where the response it continues stopped, to
the first point where the run rests waiting for a person's approval, or to the run's end. So its
id says all there is to keep: `resp_<run>` starts with the run, `resp_<run>_<event id>` after
that event. Reading the log again gives the same items and the same sequence numbers, so a
stream resumes with `starting_after`, and nothing about a response is stored beside its run.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from api.chat import OrchestrationRef
from api.schemas import Links
from workflows.messages import FINAL_EVENT_TYPES, OrchestrationStatus, RunEvent, RunEventType, RunStatus, StopReason

RUN_ID_PREFIX = "orch-"
_RESPONSE_ID = re.compile(r"resp_([0-9a-f]{32})(?:_([1-9][0-9]{0,17}))?")
_APPROVAL_REQUEST_ID = re.compile(r"mcpr_([0-9a-f]{64})_([A-Za-z0-9_.:-]{1,64})")
TEXT_PIECE_CHARS = 48
"""The final answer streams in `response.output_text.delta` pieces of this many characters (the run
has the whole answer at once: its LLM calls are not streamed)."""

ResponseStatus = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]


@dataclass(frozen=True)
class ResponseRef:
    """One response: the run, and the event it starts after (0: the run's start)."""

    run_id: str
    after: int = 0

    @property
    def key(self) -> str:
        """The run's own part of the ids of the response and its items."""
        return self.run_id.removeprefix(RUN_ID_PREFIX)

    @property
    def id(self) -> str:
        tail = f"_{self.after}" if self.after else ""
        return f"resp_{self.key}{tail}"

    @classmethod
    def parse(cls, response_id: str) -> ResponseRef | None:
        found = _RESPONSE_ID.fullmatch(response_id)
        if found is None:
            return None
        return cls(f"{RUN_ID_PREFIX}{found[1]}", int(found[2] or 0))

    @classmethod
    def of_run(cls, run_id: str) -> ResponseRef | None:
        """The response a run starts with; None for a run id no response can name."""
        return cls.parse(cls(run_id).id) if run_id.startswith(RUN_ID_PREFIX) else None


def approval_request_id(tool_call_id: str, approval_hash: str) -> str:
    """The id of an `mcp_approval_request`: the call and its approval hash, so that the answer to it
    is a decision about exactly the call that was shown."""
    return f"mcpr_{approval_hash}_{tool_call_id}"


def parse_approval_request_id(value: str) -> tuple[str, str] | None:
    """(tool call id, approval hash) of an `mcp_approval_request` id, or None."""
    found = _APPROVAL_REQUEST_ID.fullmatch(value)
    return (found[2], found[1]) if found else None


@dataclass
class _Call:
    state: Literal["pending", "approved", "running", "settled"]
    request: dict[str, Any] | None = None
    """Its `mcp_approval_request` item, if it waited for one."""
    item: int | None = None
    """Its `mcp_call` item in the output, once it has one."""

    @property
    def approval_request_id(self) -> str | None:
        return self.request["id"] if self.request else None


@dataclass
class ResponseProjection:
    """The response `ref` built from its run's events, fed in order from the oldest kept.

    `feed` answers with the stream events each run event adds; `finish`, once the response has
    ended (`ended`), with the last ones. `echo` holds the request fields a response repeats."""

    ref: ResponseRef
    echo: dict[str, Any]
    created_at: datetime
    links: Links
    output: list[dict[str, Any]] = field(default_factory=list)
    end: int | None = None
    """The event the response ended with: the run's last, or the one after which it waits for approval."""
    final: RunEvent | None = None
    previous_start: int = 0
    """Where the response this one continues started (the latest stop before `ref.after`)."""
    _usage: list[int] = field(default_factory=lambda: [0, 0])
    _calls: dict[str, _Call] = field(default_factory=dict)
    _unseen: int = 0
    """Calls of the latest LLM reply that have not shown up in the events yet."""
    _resting: bool = False
    fed: int = 0
    """The newest event fed (0: none yet)."""
    _starts_at_rest: bool = False
    _ended_at: datetime | None = None
    _answered: bool = False
    latest_rest: int = 0
    """The latest event at which the run came to rest waiting for approval."""

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def starts_where_one_ended(self) -> bool:
        """Whether a response starts here: at the run's start, or where one ended waiting for approval."""
        return self.ref.after == 0 or self._starts_at_rest

    @property
    def approval_requests(self) -> dict[str, dict[str, Any]]:
        """The response's `mcp_approval_request` items by id."""
        return {item["id"]: item for item in self.output if item["type"] == "mcp_approval_request"}

    def feed(self, event: RunEvent) -> list[dict[str, Any]]:
        """The stream events that `event` adds to this response (none once it has ended: the
        run's later events only tell where it is now, `moved_on`)."""
        self.fed = event.id
        mine = self.end is None and event.id > self.ref.after
        if event.id == self.ref.after:
            self.created_at = event.at
        shown = self._apply(event, mine)
        resting = self._at_rest()
        came_to_rest, self._resting = resting and not self._resting, resting
        if came_to_rest:
            self.latest_rest = event.id
            if event.id < self.ref.after:
                self.previous_start = event.id
        if event.id == self.ref.after:
            self._starts_at_rest = came_to_rest
        if not mine:
            return []
        if event.type in FINAL_EVENT_TYPES:
            self.end, self.final, self._ended_at = event.id, event, event.at
        elif came_to_rest:
            self.end, self._ended_at = event.id, event.at
            shown += self._still_waiting()
        return shown

    @property
    def moved_on(self) -> bool:
        """Whether the run has gone on since this response ended waiting for approval."""
        return self.end is not None and not (self.final is None and self._resting and self.latest_rest == self.end)

    def finish(self, run: OrchestrationStatus) -> list[dict[str, Any]]:
        """The last stream events of an ended response: the answer, then how it ended."""
        shown: list[dict[str, Any]] = []
        if self.final is not None and run.status == RunStatus.COMPLETED and run.output and not self._answered:
            self._answered = True
            shown = self._answer(run.output)
        status = self.status(run)
        kind = {"completed": "completed", "incomplete": "incomplete"}.get(status, "failed")
        return [*shown, {"type": f"response.{kind}", "response": self.snapshot(run)}]

    def opening(self, run: OrchestrationStatus) -> list[dict[str, Any]]:
        """The first stream events of any response."""
        created = self.snapshot(run)
        return [
            {"type": "response.created", "response": created},
            {"type": "response.in_progress", "response": created | {"status": "in_progress"}},
        ]

    def status(self, run: OrchestrationStatus) -> ResponseStatus:
        if self.end is not None and self.final is None:
            return "completed"  # rests waiting for approval: the approval requests are its answer
        if self.final is None and run.status not in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
            if run.status == RunStatus.TIMED_OUT:
                return "failed"
            return "in_progress" if self.fed or run.step else "queued"
        if run.status == RunStatus.COMPLETED:
            return "incomplete" if run.stop_reason == StopReason.MAX_STEPS else "completed"
        return "cancelled" if run.status == RunStatus.CANCELLED else "failed"

    def snapshot(self, run: OrchestrationStatus) -> dict[str, Any]:
        """The response object as OpenAI's clients read it, with the run behind it in `orchestration`."""
        status = self.status(run)
        input_tokens, output_tokens = self._usage
        echo = self.echo
        previous = echo.get("previous_response_id")
        if self.ref.after:
            previous = ResponseRef(self.ref.run_id, self.previous_start).id
        return {
            "id": self.ref.id,
            "object": "response",
            "created_at": self.created_at.timestamp(),
            "status": status,
            "background": echo.get("background", False),
            "completed_at": self._ended_at.timestamp() if status == "completed" and self._ended_at else None,
            "error": {"code": "server_error", "message": run.error or run.status.value} if status == "failed" else None,
            "incomplete_details": {"reason": "max_steps"} if status == "incomplete" else None,
            "instructions": echo.get("instructions"),
            "max_tool_calls": echo.get("max_tool_calls"),
            "metadata": run.metadata,
            "model": run.model or echo.get("model") or "",
            "output": copy.deepcopy(self.output),
            "parallel_tool_calls": True,
            "previous_response_id": previous,
            "store": True,
            "temperature": None,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": echo.get("tools", []),
            "top_p": None,
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "orchestration": OrchestrationRef(
                id=run.id,
                status=run.status,
                pending_approvals=run.pending_approvals,
                pending_inputs=run.pending_inputs,
                links=self.links,
            ).model_dump(mode="json"),
        }

    # --- From the run's events -----------------------------------------------------------

    def _apply(self, event: RunEvent, mine: bool) -> list[dict[str, Any]]:
        data = event.data
        call_id = event.tool_call_id or ""
        if call_id and call_id not in self._calls and event.type != RunEventType.TOOL_PROGRESS:
            self._unseen = max(0, self._unseen - 1)
        match event.type:
            case RunEventType.TOOLS_LISTED if mine:
                return self._tools_listed(event)
            case RunEventType.TOOL_PENDING:
                request = {
                    "id": approval_request_id(call_id, data.get("approval_hash", "")),
                    "type": "mcp_approval_request",
                    "server_label": data.get("server", ""),
                    "name": data.get("tool", ""),
                    "arguments": json.dumps(data.get("arguments", {})),
                }
                self._calls[call_id] = _Call("pending", request)
                if mine:
                    return self._added(dict(request), done=True)
            case RunEventType.TOOL_APPROVED:
                self._call(call_id).state = "approved"
            case RunEventType.TOOL_DENIED:
                self._call(call_id).state = "settled"  # as OpenAI's: a denied call has no mcp_call item
            case RunEventType.TOOL_STARTED:
                call = self._call(call_id)
                call.state = "running"
                if mine:
                    return self._call_started(call, call_id, data)
            case RunEventType.TOOL_FINISHED:
                call = self._call(call_id)
                call.state = "settled"
                if mine:
                    shown = self._call_started(call, call_id, data) if call.item is None else []
                    return shown + self._call_finished(call, data)
            case RunEventType.LLM_FINISHED:
                self._unseen = int(data.get("tool_calls") or 0)
                if mine:
                    usage = data.get("usage") or {}
                    self._usage[0] += int(usage.get("prompt_tokens", 0))
                    self._usage[1] += int(usage.get("completion_tokens", 0))
        return []

    def _call(self, call_id: str) -> _Call:
        return self._calls.setdefault(call_id, _Call("approved"))

    def _at_rest(self) -> bool:
        """Waiting for a person's approval, with nothing else under way (every call the model asked
        for in its latest reply has shown up, for they all do in the same workflow task)."""
        states = {call.state for call in self._calls.values()}
        return "pending" in states and not states & {"approved", "running"} and self._unseen == 0

    def _still_waiting(self) -> list[dict[str, Any]]:
        """A response that ends waiting lists every call it waits for: also those asked before it
        started that nobody has decided yet (some of a response's calls decided elsewhere)."""
        shown = set(self.approval_requests)
        waiting = [call.request for call in self._calls.values() if call.state == "pending" and call.request]
        return [
            event for request in waiting if request["id"] not in shown for event in self._added(dict(request), True)
        ]

    def _tools_listed(self, event: RunEvent) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = []
        listed = [(server["server"], server["tools"], None) for server in event.data.get("servers", [])]
        listed += [(name, [], problem) for name, problem in event.data.get("unavailable", {}).items()]
        for server, tools, problem in listed:
            item: dict[str, Any] = {
                "id": f"mcpl_{self.ref.key}_{len(self.output)}",
                "type": "mcp_list_tools",
                "server_label": server,
                "tools": [],
            }
            index = len(self.output)
            shown += self._added(item)
            shown.append(_at(item, index, "response.mcp_list_tools.in_progress"))
            item["tools"] = [
                {
                    "name": tool["name"],
                    "description": tool.get("description") or None,
                    "input_schema": tool.get("input_schema", {}),
                    "annotations": None,
                }
                for tool in tools
            ]
            if problem is not None:
                item["error"] = problem
            outcome = "failed" if problem is not None else "completed"
            shown.append(_at(item, index, f"response.mcp_list_tools.{outcome}"))
            shown.append(_item_done(item, index))
        return shown

    def _call_started(self, call: _Call, call_id: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        arguments = json.dumps(data.get("arguments") or {})
        item = {
            "id": f"mcp_{call_id}",
            "type": "mcp_call",
            "server_label": data.get("server") or "",
            "name": data.get("tool") or "",
            "arguments": "",
            "approval_request_id": call.approval_request_id,
            "output": None,
            "error": None,
            "status": "in_progress",
        }
        call.item = len(self.output)
        shown = self._added(item)
        item["arguments"] = arguments
        return shown + [
            _at(item, call.item, "response.mcp_call.in_progress"),
            _at(item, call.item, "response.mcp_call_arguments.delta", delta=arguments),
            _at(item, call.item, "response.mcp_call_arguments.done", arguments=arguments),
        ]

    def _call_finished(self, call: _Call, data: dict[str, Any]) -> list[dict[str, Any]]:
        assert call.item is not None
        item = self.output[call.item]
        text = data.get("output_preview") or ""
        if data.get("status") == "completed":
            item.update(status="completed", output=text)
        else:
            item.update(
                status="failed",
                error={"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": text}]},
            )
        outcome = "completed" if item["status"] == "completed" else "failed"
        return [_at(item, call.item, f"response.mcp_call.{outcome}"), _item_done(item, call.item)]

    def _answer(self, text: str) -> list[dict[str, Any]]:
        index = len(self.output)
        item: dict[str, Any] = {
            "id": f"msg_{self.ref.key}_{self.end}",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        shown = self._added(item)
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        shown.append({"type": "response.content_part.added", **where, "part": dict(part)})
        for at in range(0, len(text), TEXT_PIECE_CHARS):
            delta = text[at : at + TEXT_PIECE_CHARS]
            shown.append({"type": "response.output_text.delta", **where, "delta": delta, "logprobs": []})
        part["text"] = text
        shown.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
        shown.append({"type": "response.content_part.done", **where, "part": dict(part)})
        item.update(status="completed", content=[part])
        shown.append(_item_done(item, index))
        return shown

    def _added(self, item: dict[str, Any], done: bool = False) -> list[dict[str, Any]]:
        self.output.append(item)
        index = len(self.output) - 1
        added = {"type": "response.output_item.added", "output_index": index, "item": copy.deepcopy(item)}
        return [added, _item_done(item, index)] if done else [added]


def _at(item: dict[str, Any], index: int, kind: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "output_index": index, "item_id": item["id"], **more}


def _item_done(item: dict[str, Any], index: int) -> dict[str, Any]:
    return {"type": "response.output_item.done", "output_index": index, "item": copy.deepcopy(item)}
