"""What MCP servers ask in the middle of a tool call, on the terminal: `orch answer` (its fields
converted to the requested schema's types, or asked one by one), the questions `orch run` shows
and asks while it follows a run, and the lines of the events about them. The commands run
against a stand-in API that records what `orch` sends (the views are those of
/v1/orchestrations)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.cli.forms import field_value
from api.cli.render import event_line, input_view, status_view, waiting_for
from tests.api.conftest import serve_api
from tests.orch_cli import run_orch
from worker.settings import Settings

MEETING = {
    "input_id": "call_1/1/meeting",
    "tool_call_id": "call_1",
    "server": "calendar",
    "tool": "book",
    "kind": "elicitation",
    "message": "When shall we meet?",
    "requested_schema": {
        "type": "object",
        "properties": {
            "date": {"type": "string", "title": "Date", "description": "the day, YYYY-MM-DD"},
            "people": {"type": "integer", "title": "People"},
            "room": {"type": "string", "enum": ["small", "large"], "default": "small"},
            "remote": {"type": "boolean", "description": "a video link too"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "budget": {"type": "number"},
        },
        "required": ["date", "people"],
    },
    "url": None,
    "sampling": None,
    "source": "tool_call",
    "requested_at": "2026-05-01T12:00:00Z",
    "expires_at": "2026-05-01T12:05:00Z",
}
SUMMARY = {
    "input_id": "call_2/1/summary",
    "tool_call_id": "call_2",
    "server": "notes",
    "tool": "summarize",
    "kind": "sampling",
    "message": None,
    "requested_schema": None,
    "url": None,
    "sampling": {
        "system_prompt": "You summarize notes.",
        "messages": [{"role": "user", "content": "Summarize: the meeting moved to Friday."}],
        "max_tokens": 200,
    },
    "source": "tool_call",
    "requested_at": "2026-05-01T12:00:00Z",
    "expires_at": "2026-05-01T12:05:00Z",
}
SIGN_IN = MEETING | {
    "input_id": "call_3/1/login",
    "tool_call_id": "call_3",
    "server": "crm",
    "tool": "export",
    "message": "Sign in to the CRM",
    "requested_schema": None,
    "url": "https://crm.example/connect?session=abc",
}
PROPERTIES = MEETING["requested_schema"]["properties"]  # type: ignore[index]


def _run(pending_inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "orch-1",
        "status": "waiting_for_input" if pending_inputs else "completed",
        "stop_reason": None if pending_inputs else "final_answer",
        "model": "demo",
        "step": 1,
        "max_steps": 10,
        "steps": [],
        "pending_approvals": [],
        "pending_inputs": pending_inputs,
        "output": None if pending_inputs else "booked",
    }


# --- The pure parts: values from the schema, the question's view, the event lines ----------------


@pytest.mark.parametrize(
    ("spec", "text", "value"),
    [
        ({"type": "integer"}, "12", 12),
        ({"type": "integer"}, " -3 ", -3),
        ({"type": "number"}, "2", 2),
        ({"type": "number"}, "2.5", 2.5),
        ({"type": "boolean"}, "yes", True),
        ({"type": "boolean"}, "No", False),
        ({"type": "boolean"}, "true", True),
        ({"type": "boolean"}, "FALSE", False),
        ({"type": "array", "items": {"type": "string"}}, "a, b,,c ", ["a", "b", "c"]),
        ({"type": "array", "items": {"enum": ["x", "y"]}}, "y,x", ["y", "x"]),
        ({"type": "string"}, "2026-05-01", "2026-05-01"),
        ({"type": "string", "enum": ["small", "large"]}, "large", "large"),
        ({"type": "string", "oneOf": [{"const": "s", "title": "Small"}, {"const": "l"}]}, "l", "l"),
        ({"type": ["integer", "null"]}, "7", 7),
        ({}, "anything", "anything"),
    ],
)
def test_a_field_value_is_converted_to_its_schema_type(spec: dict[str, Any], text: str, value: Any) -> None:
    converted = field_value(spec, text)
    assert converted == value and type(converted) is type(value)


@pytest.mark.parametrize(
    ("spec", "text", "says"),
    [
        ({"type": "integer"}, "twelve", "'twelve' is not an integer"),
        ({"type": "integer"}, "1.5", "'1.5' is not an integer"),
        ({"type": "number"}, "lots", "'lots' is not a number"),
        ({"type": "number"}, "nan", "'nan' is not a finite number"),
        ({"type": "boolean"}, "maybe", "'maybe' is not a boolean: answer true/false or yes/no"),
        ({"type": "string", "enum": ["small", "large"]}, "huge", "'huge' is not one of: small, large"),
        ({"type": "integer", "enum": [1, 2]}, "3", "'3' is not one of: 1, 2"),
        ({"type": "array", "items": {"enum": ["x", "y"]}}, "x,z", "'z' is not one of: x, y"),
    ],
)
def test_a_value_that_does_not_convert_says_what_the_field_wants(spec: dict[str, Any], text: str, says: str) -> None:
    with pytest.raises(ValueError) as raised:
        field_value(spec, text)
    assert str(raised.value) == says


def test_the_view_of_a_form_lists_its_fields_the_expiry_and_the_commands() -> None:
    assert input_view("orch-1", MEETING).splitlines() == [
        "calendar.book asks (input call_1/1/meeting, call call_1): When shall we meet?",
        "  date (string, required): Date - the day, YYYY-MM-DD",
        "  people (integer, required): People",
        "  room (string); one of: small, large; default: small",
        "  remote (boolean): a video link too",
        "  tags (array of string, comma-separated)",
        "  budget (number)",
        "  expires 2026-05-01T12:05:00 (then it counts as declined)",
        "  accept:  orch answer orch-1 call_1/1/meeting --field date='...' --field people='...'",
        "  decline: orch answer orch-1 call_1/1/meeting --decline --reason '...'",
    ]


def test_the_view_of_a_sampling_request_shows_the_messages_the_model_would_get() -> None:
    assert input_view("orch-1", SUMMARY).splitlines() == [
        "notes.summarize asks to use the run's model (sampling, input call_2/1/summary, call call_2; "
        "up to 200 tokens):",
        "  system: You summarize notes.",
        "  user: Summarize: the meeting moved to Friday.",
        "  expires 2026-05-01T12:05:00 (then it counts as declined)",
        "  allow:   orch answer orch-1 call_2/1/summary",
        "  decline: orch answer orch-1 call_2/1/summary --decline --reason '...'",
    ]


def test_the_view_of_a_url_elicitation_says_where_to_go() -> None:
    view = input_view("orch-1", SIGN_IN).splitlines()
    assert view[:2] == [
        "crm.export asks (input call_3/1/login, call call_3): Sign in to the CRM",
        "  go to: https://crm.example/connect?session=abc",
    ]
    assert view[3] == "  done:    orch answer orch-1 call_3/1/login"


def test_an_input_id_the_shell_would_split_is_quoted_in_the_commands() -> None:
    view = input_view("orch-1", SUMMARY | {"input_id": "call_2/1/my key"})
    assert "  allow:   orch answer orch-1 'call_2/1/my key'" in view.splitlines()


def test_the_status_shows_each_question_and_what_the_run_waits_for() -> None:
    run = _run([MEETING, SUMMARY])
    view = status_view(run)
    assert input_view("orch-1", MEETING) in view and input_view("orch-1", SUMMARY) in view
    assert waiting_for(run) == "calendar.book asks call_1/1/meeting, notes.summarize asks call_2/1/summary"
    approval = {"tool_call_id": "call_9", "server": "time", "tool": "convert_time", "arguments": {}}
    assert waiting_for(_run([MEETING]) | {"pending_approvals": [approval]}) == (
        "time.convert_time (call_9), calendar.book asks call_1/1/meeting"
    )


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            {"type": "input_requested", "tool_call_id": "call_1", "data": dict(MEETING)},
            None,  # the question's view shows it
        ),
        (
            {
                "type": "input_answered",
                "tool_call_id": "call_1",
                "data": {"input_id": "call_1/1/meeting", "kind": "elicitation", "action": "accept",
                         "answerer": "cli:ann", "reason": None, "step": 2},
            },
            "  step 2: call_1/1/meeting accepted by cli:ann",
        ),
        (
            {
                "type": "input_answered",
                "tool_call_id": "call_2",
                "data": {"input_id": "call_2/1/summary", "kind": "sampling", "action": "decline",
                         "answerer": "bob", "reason": "private notes"},
            },
            "  call_2/1/summary declined by bob: private notes",
        ),
        (
            {"type": "input_answered", "data": {"input_id": "x/1/y", "action": "cancel", "answerer": None}},
            "  x/1/y cancelled by unknown",
        ),
        (
            {"type": "tool_progress", "tool_call_id": "call_1",
             "data": {"progress": 3, "total": 10, "message": "step 3 of 10", "step": 1}},
            "  step 1: tool call_1 progress 3/10 step 3 of 10",
        ),
        (
            {"type": "tool_progress", "tool_call_id": "call_1", "data": {"progress": 0.5, "total": None}},
            "  tool call_1 progress 0.5",
        ),
        (
            {"type": "task_status", "tool_call_id": "call_4",
             "data": {"task_id": "t-7", "status": "working", "status_message": "indexing", "step": 1}},
            "  step 1: task t-7 working: indexing",
        ),
        (
            {"type": "task_status", "data": {"task_id": "t-7", "status": "input_required"}},
            "  task t-7 input_required",
        ),
        (
            {"type": "sampling", "tool_call_id": "call_2",
             "data": {"input_id": "call_2/1/summary", "usage": {"prompt_tokens": 40, "completion_tokens": 12}}},
            "  sampled the model for call_2/1/summary (40+12 tokens)",
        ),
        (
            {"type": "sampling", "tool_call_id": "call_2", "data": {"error": "model unavailable"}},
            "  sampling the model for call_2 failed: model unavailable",
        ),
    ],
)  # fmt: skip
def test_event_lines_of_questions_progress_tasks_and_sampling(event: dict[str, Any], line: str | None) -> None:
    assert event_line(event) == line


# --- The commands, against a stand-in API ---------------------------------------------------------------


class StandIn:
    """A run waiting for `pending` inputs: its status, events and inputs endpoints; answers
    remove the input answered (`refuse`: input ids answered with that error instead)."""

    def __init__(self, pending: list[dict[str, Any]]) -> None:
        self.pending = list(pending)
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.refuse: dict[str, tuple[int, str]] = {}

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/orchestrations")
        async def start(request: Request) -> JSONResponse:
            self.requests.append(("POST", request.url.path, await request.json()))
            return JSONResponse({"id": "orch-1", "links": {"temporal_ui": "http://ui.example/orch-1"}}, 201)

        @app.get("/v1/orchestrations")
        async def listing() -> JSONResponse:
            summary = {k: _run(self.pending)[k] for k in ("id", "status", "stop_reason")}
            return JSONResponse({"data": [summary | {"created_at": "2026-05-01T12:00:00Z"}]})

        @app.get("/v1/orchestrations/{run_id}")
        async def status(run_id: str) -> JSONResponse:
            return JSONResponse(_run(self.pending))

        @app.get("/v1/orchestrations/{run_id}/events")
        async def events(run_id: str) -> Response:
            stream = "".join(
                f"id: {number}\nevent: {event['type']}\ndata: {json.dumps(event | {'id': number})}\n\n"
                for number, event in enumerate(self.events, 1)
            )
            return Response(stream, media_type="text/event-stream")

        @app.post("/v1/orchestrations/{run_id}/inputs")
        async def answer(run_id: str, request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append(("POST", request.url.path, body))
            if body["input_id"] in self.refuse:
                code, message = self.refuse[body["input_id"]]
                return JSONResponse({"error": {"code": "refused", "message": message}}, code)
            self.pending = [p for p in self.pending if p["input_id"] != body["input_id"]]
            return JSONResponse(_run(self.pending))

        return app

    def answers(self) -> list[Any]:
        return [body for _, path, body in self.requests if path.endswith("/inputs")]


@contextlib.asynccontextmanager
async def stand_in_api(*pending: dict[str, Any]) -> AsyncIterator[tuple[StandIn, tuple[str, str]]]:
    """The stand-in API served; yields it and the `--api-url` flag."""
    api = StandIn(list(pending))
    async with serve_api(Settings(), api.app()) as (_, base_url):
        yield api, ("--api-url", base_url)


async def test_answer_converts_each_field_to_its_type_in_the_schema() -> None:
    async with stand_in_api(MEETING) as (api, url):
        code, out, err = await run_orch(
            "answer", "orch-1", "call_1/1/meeting", "--field", "date=2026-05-04", "--field", "people=3",
            "--field", "remote=yes", "--field", "tags=ops, planning", "--field", "budget=99.5",
            "--answerer", "ann", "--reason", "as agreed", *url,
        )  # fmt: skip
    assert code == 0, err
    assert api.answers() == [
        {
            "input_id": "call_1/1/meeting",
            "action": "accept",
            "content": {"date": "2026-05-04", "people": 3, "remote": True, "tags": ["ops", "planning"], "budget": 99.5},
            "answerer": "ann",
            "reason": "as agreed",
        }
    ]
    assert out.splitlines() == [
        "accept: calendar.book asks: When shall we meet?",
        "accepted call_1/1/meeting; run is completed",
    ]


async def test_answer_takes_json_content_with_fields_over_it_and_prints_json() -> None:
    async with stand_in_api(MEETING) as (api, url):
        code, out, err = await run_orch(
            "answer", "orch-1", "call_1/1/meeting", "--json-content", '{"date": "2026-05-04", "people": 2}',
            "--field", "people=4", "--json", *url,
        )  # fmt: skip
    assert code == 0, err
    [body] = api.answers()
    assert body["content"] == {"date": "2026-05-04", "people": 4}
    assert body["answerer"].startswith("cli")  # as `orch approve` names the approver
    assert json.loads(out)["status"] == "completed"


async def test_answer_declines_cancels_and_accepts_a_sampling_request_without_content() -> None:
    async with stand_in_api(MEETING, SUMMARY, SIGN_IN) as (api, url):
        declined = await run_orch("answer", "orch-1", "call_1/1/meeting", "--decline", "--reason", "no time", *url)
        allowed = await run_orch("answer", "orch-1", "call_2/1/summary", *url)
        cancelled = await run_orch("answer", "orch-1", "call_3/1/login", "--cancel", "--answerer", "ann", *url)
    assert [r[0] for r in (declined, allowed, cancelled)] == [0, 0, 0], (declined, allowed, cancelled)
    assert [(body["action"], body.get("content", "none"), body["reason"]) for body in api.answers()] == [
        ("decline", "none", "no time"),
        ("accept", "none", None),
        ("cancel", "none", None),
    ]
    assert declined[1].splitlines() == [
        "decline: calendar.book asks: When shall we meet?",
        "declined call_1/1/meeting; run is waiting_for_input",
    ]
    assert allowed[1].startswith("accept: notes.summarize asks to use the run's model (1 message)\n")
    assert cancelled[1].startswith(
        "cancel: crm.export asks: Sign in to the CRM (go to https://crm.example/connect?session=abc)\n"
    )


async def test_answer_asks_each_field_on_the_terminal_when_none_is_given() -> None:
    # date; people: not a number, then 2; room: Enter keeps the default; remote: not a boolean,
    # then no; tags: Enter leaves it out; budget: 12.5.
    typed = b"2026-05-04\ntwo\n2\n\nmaybe\nno\n\n12.5\n"
    async with stand_in_api(MEETING) as (api, url):
        code, out, err = await run_orch("answer", "orch-1", "call_1/1/meeting", *url, stdin=typed)
    assert code == 0, err
    [body] = api.answers()
    assert body["content"] == {"date": "2026-05-04", "people": 2, "room": "small", "remote": False, "budget": 12.5}
    # What was typed is not echoed: each prompt is followed by what `orch` says next.
    assert out.splitlines() == [
        "accept: calendar.book asks: When shall we meet?",
        "  date (string, required): Date - the day, YYYY-MM-DD",
        "  date:   people (integer, required): People",
        "  people:   'two' is not an integer",
        "  people:   room (string); one of: small, large; default: small",
        "  room [small]:   remote (boolean): a video link too",
        "  remote:   'maybe' is not a boolean: answer true/false or yes/no",
        "  remote:   tags (array of string, comma-separated)",
        "  tags:   budget (number)",
        "  budget: accepted call_1/1/meeting; run is completed",
    ]


async def test_a_required_field_is_asked_again_when_left_empty() -> None:
    async with stand_in_api(MEETING) as (api, url):
        code, out, err = await run_orch(
            "answer", "orch-1", "call_1/1/meeting", *url, stdin=b"\n2026-05-04\n5\nlarge\nyes\na,b\n1\n"
        )
    assert code == 0, err
    assert "  date is required\n" in out
    assert api.answers()[0]["content"] == {
        "date": "2026-05-04",
        "people": 5,
        "room": "large",
        "remote": True,
        "tags": ["a", "b"],
        "budget": 1,
    }


async def test_answer_without_terminal_input_says_to_use_field() -> None:
    async with stand_in_api(MEETING) as (api, url):
        code, _, err = await run_orch("answer", "orch-1", "call_1/1/meeting", *url, stdin=b"2026-05-04\n")
    assert code == 2
    assert err == "orch: no terminal input: give the answer with --field NAME=VALUE (or --json-content)\n"
    assert api.answers() == []


async def test_answer_with_json_output_asks_nothing() -> None:
    async with stand_in_api(MEETING) as (api, url):
        code, out, err = await run_orch("answer", "orch-1", "call_1/1/meeting", "--json", *url, stdin=b"x\n")
    assert (code, out) == (2, "")
    assert err == "orch: give the answer with --field NAME=VALUE (or --json-content)\n"
    assert api.answers() == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--field", "people=many"], "orch: --field people: 'many' is not an integer\n"),
        (["--field", "room=huge"], "orch: --field room: 'huge' is not one of: small, large\n"),
        (["--field", "colour=red"], "orch: no field 'colour' in the form (its fields: date, people, room, "),
        (["--field", "people"], "orch: --field wants NAME=VALUE, not 'people'\n"),
        (["--json-content", "[1]"], "orch: --json-content must be a JSON object\n"),
        (["--json-content", "{"], "orch: --json-content is not JSON: "),
        (["--decline", "--field", "people=2"], "orch: --field and --json-content come with accepting, not with "),
    ],
)
async def test_answer_refuses_a_bad_answer_without_sending_it(args: list[str], says: str) -> None:
    async with stand_in_api(MEETING) as (api, url):
        code, _, err = await run_orch("answer", "orch-1", "call_1/1/meeting", *args, *url)
    assert code == 1 and err.startswith(says), err
    assert api.answers() == []


async def test_answer_says_why_the_api_refused() -> None:
    async with stand_in_api(SUMMARY) as (api, url):
        api.refuse["call_2/1/summary"] = (409, "already answered")
        refused = await run_orch("answer", "orch-1", "call_2/1/summary", *url)
        content = await run_orch("answer", "orch-1", "call_2/1/summary", "--field", "a=b", *url)
    assert refused[0] == 1 and refused[2] == "orch: 409: already answered\n"
    assert content[0] == 1 and content[2].startswith("orch: a sampling request takes no content")


def _requested(pending: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in pending.items() if k != "tool_call_id"} | {"step": 1}
    return {"type": "input_requested", "tool_call_id": pending["tool_call_id"], "data": data}


FOLLOWED = [
    {"type": "llm_started", "data": {"model": "demo", "step": 1}},
    {"type": "tool_started", "tool_call_id": "call_1", "data": {"server": "calendar", "tool": "book", "step": 1}},
    {"type": "tool_progress", "tool_call_id": "call_1", "data": {"progress": 1, "total": 4, "step": 1}},
    _requested(MEETING),
    _requested(SUMMARY),
    {
        "type": "input_answered",
        "tool_call_id": "call_1",
        "data": {"input_id": "call_1/1/meeting", "action": "accept", "answerer": "cli:ann", "step": 1},
    },
    {"type": "completed", "data": {}},
]


async def test_run_shows_each_question_and_asks_for_the_answer() -> None:
    # The form: a typo, then y and its fields; the sampling request: n with a reason.
    typed = b"sure\ny\n2026-05-04\n3\n\n\n\n\nn keep my notes private\n"
    async with stand_in_api(MEETING, SUMMARY) as (api, url):
        api.events = FOLLOWED
        code, out, err = await run_orch("run", "book a meeting", *url, stdin=typed)
    assert code == 0, err
    assert api.answers() == [
        {
            "input_id": "call_1/1/meeting",
            "action": "accept",
            "content": {"date": "2026-05-04", "people": 3, "room": "small"},
            "answerer": api.answers()[0]["answerer"],
            "reason": None,
        },
        {"input_id": "call_2/1/summary", "action": "decline", "answerer": api.answers()[1]["answerer"],
         "reason": "keep my notes private"},
    ]  # fmt: skip
    assert "  step 1: tool call_1 progress 1/4\n" in out
    assert input_view("orch-1", MEETING) + "\nanswer? [y = fill in / n = decline / c = cancel] " in out
    assert "  answer y, n or c, optionally followed by a reason\n" in out
    assert input_view("orch-1", SUMMARY) + "\nallow? [y/n, optionally followed by a reason] " in out
    assert "  step 1: call_1/1/meeting accepted by cli:ann\n" in out
    assert out.endswith("completed (final_answer): booked\n")


async def test_run_without_terminal_input_shows_the_commands_and_asks_nothing_more() -> None:
    async with stand_in_api(MEETING, SUMMARY) as (api, url):
        api.events = FOLLOWED
        code, out, err = await run_orch("run", "book a meeting", *url, stdin=b"y\n2026-05-04\n")
    assert api.answers() == []
    assert out.count("  (no terminal input: answer with the commands above)") == 1
    assert "allow? [" not in out and input_view("orch-1", SUMMARY) in out
    assert "orch answer orch-1 call_2/1/summary --decline" in out
    assert code == 1  # the stand-in's run still waits for its inputs


async def test_run_asks_the_form_again_when_the_api_refuses_its_content() -> None:
    form = MEETING | {"requested_schema": {"type": "object", "properties": {"date": {"type": "string"}}}}
    async with stand_in_api(form) as (api, url):
        api.events = [_requested(form), {"type": "completed", "data": {}}]
        api.refuse["call_1/1/meeting"] = (422, "content does not match the requested schema")
        code, out, _ = await run_orch("run", "book", *url, stdin=b"y\nfriday\n2026-05-04\n")
    assert [body["content"] for body in api.answers()] == [{"date": "friday"}, {"date": "2026-05-04"}]
    assert out.count("  not answered: 422: content does not match the requested schema\n") == 2
    assert code == 1


async def test_list_shows_what_a_run_waiting_for_input_waits_for() -> None:
    async with stand_in_api(MEETING) as (_, url):
        code, out, err = await run_orch("list", *url)
    assert code == 0, err
    assert out.splitlines()[1].split() == [
        "orch-1",
        "waiting_for_input",
        "2026-05-01T12:00:00",
        "calendar.book",
        "asks",
        "call_1/1/meeting",
    ]
