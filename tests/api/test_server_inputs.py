"""What MCP servers ask in the middle of a tool call, end to end: the real `interactive` server
(tests/mcp_servers/interactive.py) over stdio and streamable HTTP, a worker, the API. Questions
are answered through the API, by signal, declined, left to expire; a sampling request is served
by the scripted model; an in-session question is declined at once; progress shows in the events."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import APIFactory, APIHarness, collect
from tests.conftest import REPO_ROOT, WebhookReceiver
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import wait_for_port
from workflows.contract import SUBMIT_INPUT_SIGNAL
from workflows.messages import InputAnswer

ROOTS = [{"uri": "file:///srv/projects", "name": "projects"}]


class InteractiveLog:
    """The interactive server's own record of the tool bodies that ran to the end."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def calls(self, tool: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [line for line in lines if line["tool"] == tool]


@pytest.fixture
def interactive_log(tmp_path: Path) -> InteractiveLog:
    return InteractiveLog(tmp_path / "interactive.jsonl")


def interactive_stdio(log: InteractiveLog, *args: str, **policy: Any) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": ["-m", "tests.mcp_servers.interactive", *args],
        "cwd": str(REPO_ROOT),
        "env": {"INTERACTIVE_CALL_LOG": str(log.path)},
        "tools_to_auto_execute": ["*"],
        "roots": ROOTS,
        **policy,
    }


@pytest.fixture
async def interactive_http(interactive_log: InteractiveLog) -> AsyncIterator[str]:
    """The interactive server over streamable HTTP; its URL."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mcp_servers.interactive", "--http", str(port),
        cwd=REPO_ROOT, env={"INTERACTIVE_CALL_LOG": str(interactive_log.path), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await wait_for_port(port)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.kill()
    await proc.wait()


async def _start(api: APIHarness, model: str, **body: Any) -> str:
    response = await api.http.post("/v1/orchestrations", json={"input": "go", "model": model, **body})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["id"]
    return run_id


async def _asked(api: APIHarness, run_id: str, input_id_part: str) -> dict[str, Any]:
    """The run's pending input whose id contains `input_id_part`, once it is asked."""
    status = await api.wait_for(run_id, lambda s: any(input_id_part in p["input_id"] for p in s["pending_inputs"]))
    return next(p for p in status["pending_inputs"] if input_id_part in p["input_id"])


async def _answer(api: APIHarness, run_id: str, **body: Any) -> dict[str, Any]:
    response = await api.http.post(f"/v1/orchestrations/{run_id}/inputs", json=body)
    assert response.status_code == 200, response.text
    answered: dict[str, Any] = response.json()
    return answered


async def _events(api: APIHarness, run_id: str) -> dict[str, Any]:
    """The events of a finished run (its stream, which ends after the final one), by type."""
    return {"data": [event["data"] for event in await collect(api.http, f"/v1/orchestrations/{run_id}/events")]}


def _tool_message(llm: ScriptedLLM, model: str, call_id: str) -> str:
    messages = llm.requests_for(model)[-1]["messages"]
    content: str = next(m["content"] for m in messages if m.get("tool_call_id") == call_id)
    return content


async def test_two_rounds_answered_through_the_api_over_stdio(
    api_stack: APIFactory, llm: ScriptedLLM, interactive_log: InteractiveLog, webhook_receiver: WebhookReceiver
) -> None:
    llm.script(
        "m-trip",
        Reply(tool_calls=[tool_call("b1", "trip__book_trip", {"destination": "Oslo"})]),
        Reply(content="booked it"),
    )
    hook = f"http://127.0.0.1:{webhook_receiver.port}/hook"
    async with api_stack({"trip": interactive_stdio(interactive_log)}, webhook_allowed_hosts="127.0.0.1") as api:
        run_id = await _start(api, "m-trip", webhook_url=hook)
        date = await _asked(api, run_id, "/1/")
        assert (date["server"], date["tool"], date["tool_call_id"], date["kind"]) == (
            "trip",
            "book_trip",
            "b1",
            "elicitation",
        )
        assert date["message"] == "When do you travel to Oslo?"
        assert "date" in date["requested_schema"]["properties"]
        status = (await api.http.get(f"/v1/orchestrations/{run_id}")).json()
        assert status["status"] == "waiting_for_input"

        wrong = await api.http.post(
            f"/v1/orchestrations/{run_id}/inputs",
            json={"input_id": date["input_id"], "action": "accept", "content": {"when": "soon"}},
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_answer", wrong.text
        unknown = await api.http.post(
            f"/v1/orchestrations/{run_id}/inputs", json={"input_id": "b1/9/x", "action": "decline"}
        )
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_input", unknown.text

        await _answer(api, run_id, input_id=date["input_id"], action="accept", content={"date": "2026-12-01"})
        seats = await _asked(api, run_id, "/2/")
        assert seats["message"] == "How many seats on 2026-12-01?"
        again = await api.http.post(
            f"/v1/orchestrations/{run_id}/inputs",
            json={"input_id": date["input_id"], "action": "accept", "content": {"date": "2027-01-01"}},
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_answered", again.text
        await _answer(api, run_id, input_id=seats["input_id"], action="accept", content={"seats": 2, "window": True})
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
        events = await _events(api, run_id)

    assert final["output"] == "booked it"
    assert _tool_message(llm, "m-trip", "b1") == "booked Oslo on 2026-12-01: 2 seat(s), window"
    assert len(interactive_log.calls("book_trip")) == 1, "the tool body ran once, in the last round"
    asked = [e for e in events["data"] if e["type"] == "input_requested"]
    assert [e["data"]["message"] for e in asked] == ["When do you travel to Oslo?", "How many seats on 2026-12-01?"]
    assert [e["data"]["action"] for e in events["data"] if e["type"] == "input_answered"] == ["accept", "accept"]
    requested = [e for e in webhook_receiver.events() if e["type"] == "orchestration.input_requested"]
    assert [e["data"]["input"]["message"] for e in requested] == [a["data"]["message"] for a in asked]


async def test_answered_by_signal_over_http(api_stack: APIFactory, llm: ScriptedLLM, interactive_http: str) -> None:
    llm.script("m-name", Reply(tool_calls=[tool_call("n1", "people__ask_name", {})]), Reply(content="greeted"))
    server = {"url": interactive_http, "tools_to_auto_execute": ["*"]}
    async with api_stack({"people": server}) as api:
        run_id = await _start(api, "m-name")
        asked = await _asked(api, run_id, "n1/")
        handle = api.worker.client.get_workflow_handle(run_id)
        answer = InputAnswer(input_id=asked["input_id"], action="accept", content={"name": "Ada"}, answerer="ops")
        await handle.signal(SUBMIT_INPUT_SIGNAL, answer)
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
        events = await _events(api, run_id)
    assert final["output"] == "greeted"
    assert _tool_message(llm, "m-name", "n1") == "hello Ada"
    [answered] = [e for e in events["data"] if e["type"] == "input_answered"]
    assert answered["data"]["answerer"] == "ops"


async def test_declined_and_expired_questions_reach_the_model(
    api_stack: APIFactory, llm: ScriptedLLM, interactive_log: InteractiveLog
) -> None:
    llm.script(
        "m-decline",
        Reply(tool_calls=[tool_call("d1", "trip__book_trip", {"destination": "Rome"})]),
        Reply(content="ok"),
    )
    llm.script("m-expire", Reply(tool_calls=[tool_call("e1", "trip__ask_name", {})]), Reply(content="ok"))
    async with api_stack({"trip": interactive_stdio(interactive_log)}) as api:
        declined = await _start(api, "m-decline")
        expiring = await _start(api, "m-expire", approval_timeout_seconds=1)
        asked = await _asked(api, declined, "d1/1/")
        await _answer(api, declined, input_id=asked["input_id"], action="decline", reason="not now")
        await api.wait_for(declined, lambda s: s["status"] == "completed")
        await api.wait_for(expiring, lambda s: s["status"] == "completed")
        events = await _events(api, expiring)
    assert _tool_message(llm, "m-decline", "d1") == "booking declined"
    expired = _tool_message(llm, "m-expire", "e1")
    assert expired.startswith("no name given (decline)\n(The server asked: What is your name?. Nobody answered in time")
    [timed_out] = [e for e in events["data"] if e["type"] == "input_answered"]
    assert (timed_out["data"]["answerer"], timed_out["data"]["reason"]) == ("system", "input timed out")


async def test_sampling_approved_then_served_by_the_run_model(
    api_stack: APIFactory, llm: ScriptedLLM, interactive_log: InteractiveLog
) -> None:
    llm.script(
        "m-sum",
        Reply(tool_calls=[tool_call("s1", "docs__summarize", {"text": "a long story"})]),
        Reply(content="a short story", prompt_tokens=7, completion_tokens=3),
        Reply(content="summarized"),
    )
    async with api_stack({"docs": interactive_stdio(interactive_log)}) as api:
        run_id = await _start(api, "m-sum")
        asked = await _asked(api, run_id, "s1/1/")
        assert asked["kind"] == "sampling" and asked["sampling"]["max_tokens"] == 100
        assert asked["sampling"]["messages"] == [{"role": "user", "content": "Summarize: a long story"}]
        await _answer(api, run_id, input_id=asked["input_id"], action="accept")
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    sampling = llm.requests_for("m-sum")[1]
    assert sampling["max_tokens"] == 100 and "tools" not in sampling
    assert [m["content"] for m in sampling["messages"]] == ["Summarize: a long story"]
    assert _tool_message(llm, "m-sum", "s1") == "summary: a short story"
    assert final["usage"]["prompt_tokens"] == 10 + 7 + 10, "the sampling call counts in the run's usage"
    llm_steps = [s for s in final["steps"] if s["kind"] == "llm"]
    assert [s["tool_call_id"] for s in llm_steps] == [None, "s1", None]


async def test_roots_are_answered_from_the_server_config(
    api_stack: APIFactory, llm: ScriptedLLM, interactive_log: InteractiveLog
) -> None:
    llm.script("m-roots", Reply(tool_calls=[tool_call("r1", "fs__list_roots", {})]), Reply(content="listed"))
    async with api_stack({"fs": interactive_stdio(interactive_log)}) as api:
        run_id = await _start(api, "m-roots")
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert final["pending_inputs"] == []
    assert _tool_message(llm, "m-roots", "r1") == "file:///srv/projects"


@pytest.mark.parametrize(
    ("tool", "arguments", "asked"),
    [("legacy_ask", {}, "input"), ("summarize", {"text": "x"}, "the model (sampling)")],
)
async def test_in_session_requests_are_declined_at_once_and_the_model_told(
    api_stack: APIFactory, llm: ScriptedLLM, interactive_log: InteractiveLog, tool: str, arguments: dict, asked: str
) -> None:
    llm.script("m-legacy", Reply(tool_calls=[tool_call("l1", f"old__{tool}", arguments)]), Reply(content="noted"))
    async with api_stack({"old": interactive_stdio(interactive_log, "--legacy")}) as api:
        run_id = await _start(api, "m-legacy")
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    message = _tool_message(llm, "m-legacy", "l1")
    assert f"\nThe server old asked for {asked} in the middle of the call" in message
    assert "InputRequiredResult" in message
    if tool == "legacy_ask":
        assert message.startswith("legacy answer: decline\n")
    assert final["pending_inputs"] == [] and final["output"] == "noted"
    assert len(llm.requests_for("m-legacy")) == 2, "the model was never sampled"


async def test_progress_shows_in_the_run_events_while_the_call_runs(
    api_stack: APIFactory, llm: ScriptedLLM, interactive_log: InteractiveLog
) -> None:
    count = tool_call("c1", "slow__count_slowly", {"steps": 10})
    llm.script("m-count", Reply(tool_calls=[count]), Reply(content="counted"))
    async with api_stack({"slow": interactive_stdio(interactive_log)}) as api:
        # As an activity, the call's progress reaches the run while it runs (a local activity's
        # arrives with its workflow task's next heartbeat).
        run_id = await _start(api, "m-count", tool_call="activity")
        await api.wait_for(run_id, lambda s: s["status"] == "completed")
        events = (await _events(api, run_id))["data"]
    types = [e["type"] for e in events]
    progress = [e for e in events if e["type"] == "tool_progress"]
    assert progress, "at least one progress event"
    assert types.index("tool_started") < types.index("tool_progress") < types.index("tool_finished")
    assert all(e["tool_call_id"] == "c1" and e["data"]["total"] == 10 for e in progress)
    assert progress[0]["data"] == {"progress": 1, "total": 10, "message": "step 1 of 10", "step": 1}
    assert len(progress) < 10, "throttled: fewer events than the server's notifications"
