"""GET /v1/orchestrations/{id}/events: the run's events as Server-Sent Events."""

from __future__ import annotations

import asyncio

from api.events import RunEventsHub
from tests.api.conftest import APIFactory, APIHarness, collect
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually

POLL_SECONDS = 0.25


def _gated_then_echo() -> tuple[Reply, ...]:
    return (
        Reply(tool_calls=[tool_call("pay", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(tool_calls=[tool_call("say", "toolbox__echo", {"text": "paid"})], prompt_tokens=4, completion_tokens=2),
        Reply(content="all done"),
    )


def hub(api: APIHarness) -> RunEventsHub:
    events: RunEventsHub = api.app.state.events
    return events


async def test_a_stream_resumed_with_last_event_id_loses_and_repeats_nothing(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-events", *_gated_then_echo())
    async with api_stack({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-events"})).json()["id"]
        path = f"/v1/orchestrations/{run_id}/events"
        before = await collect(api.http, path, until="tool_pending")  # then the client goes away
        decision = {"tool_call_id": "pay", "decision": "approve", "approver": "alice"}
        assert (await api.http.post(f"/v1/orchestrations/{run_id}/approvals", json=decision)).status_code == 200
        after = await collect(api.http, path, last_event_id=int(before[-1]["id"]))
        replayed = await collect(api.http, path)  # the run has finished: from its memo
    events = before + after
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1)), "no loss, no repeat"
    assert [e["data"]["id"] for e in events] == [int(e["id"]) for e in events]
    assert [e["event"] for e in events] == [
        "tools_listed", "status", "llm_started", "llm_finished", "tool_pending", "status",
        "tool_approved", "status", "tool_started", "tool_finished",
        "llm_started", "llm_finished", "tool_started", "tool_finished",
        "llm_started", "llm_finished", "completed",
    ]  # fmt: skip
    by_type = {e["event"]: e["data"] for e in events}
    assert by_type["tool_pending"]["tool_call_id"] == "pay" and by_type["tool_pending"]["data"]["tool"] == "transfer"
    assert by_type["tool_approved"]["data"]["approver"] == "alice"
    assert [e["data"]["data"]["status"] for e in events if e["event"] == "status"] == [
        "running", "waiting_for_approval", "running"
    ]  # fmt: skip
    second_llm = [e for e in events if e["event"] == "llm_finished"][1]["data"]
    assert second_llm["data"]["usage"] == {"prompt_tokens": 4, "completion_tokens": 2}
    assert by_type["completed"]["data"]["output"] == "all done"
    assert replayed == events, "a finished run streams the same events from its memo, then ends"


async def test_many_watchers_of_one_run_share_one_poller(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-watched", *_gated_then_echo())
    async with api_stack(
        {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}, events_poll_seconds=POLL_SECONDS
    ) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-watched"})).json()["id"]
        path = f"/v1/orchestrations/{run_id}/events"
        watchers = [asyncio.create_task(collect(api.http, path)) for _ in range(10)]
        await eventually(lambda: hub(api).watchers(run_id) == 10, "10 watchers of the run")
        await api.wait_for(run_id, lambda body: body["status"] == "waiting_for_approval")
        # While the run waits, count the fetches over a measured interval: one poller fetches at
        # most once per poll interval, however slow the machine; ten would fetch ten times as often.
        loop = asyncio.get_running_loop()
        fetches, began = hub(api).fetches, loop.time()
        await asyncio.sleep(2.0)
        polled, elapsed = hub(api).fetches - fetches, loop.time() - began
        one_poller = elapsed / POLL_SECONDS + 2
        assert polled <= one_poller, f"{polled} fetches in {elapsed:.1f} s for 10 watchers"
        decision = {"tool_call_id": "pay", "decision": "approve"}
        assert (await api.http.post(f"/v1/orchestrations/{run_id}/approvals", json=decision)).status_code == 200
        streams = await asyncio.gather(*watchers)
        assert hub(api).watchers(run_id) == 0, "the poller stops with its last watcher"
    assert all(stream == streams[0] for stream in streams)
    assert streams[0][-1]["event"] == "completed"


async def test_events_of_an_unknown_run_and_a_bad_last_event_id(api_stack: APIFactory, llm: ScriptedLLM) -> None:
    llm.script("m-events-errors", Reply(content="hi"))
    async with api_stack() as api:
        unknown = await api.http.get("/v1/orchestrations/orch-nope/events")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "x", "model": "m-events-errors"})).json()[
            "id"
        ]
        bad = await api.http.get(f"/v1/orchestrations/{run_id}/events", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_last_event_id"
        events = await collect(api.http, f"/v1/orchestrations/{run_id}/events?after=0")
    assert [e["event"] for e in events] == ["tools_listed", "status", "llm_started", "llm_finished", "completed"]


async def test_a_stream_closed_by_its_lifetime_is_resumed_where_it_stopped(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-events-short", *_gated_then_echo())
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}
    async with api_stack(servers, events_stream_seconds=1) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-events-short"})).json()[
            "id"
        ]
        path = f"/v1/orchestrations/{run_id}/events"
        await api.wait_for(run_id, lambda body: body["status"] == "waiting_for_approval")
        # The run cannot move until the approval below, so this stream ends by its lifetime.
        streams = [await collect(api.http, path)]
        decision = {"tool_call_id": "pay", "decision": "approve"}
        assert (await api.http.post(f"/v1/orchestrations/{run_id}/approvals", json=decision)).status_code == 200
        events = list(streams[0])
        while not events or events[-1]["event"] != "completed":
            streams.append(await collect(api.http, path, last_event_id=int(events[-1]["id"]) if events else None))
            events += streams[-1]
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1)), "no loss, no repeat across streams"
    assert [e["event"] for e in events][-4:] == ["tool_finished", "llm_started", "llm_finished", "completed"]
    assert len(events) == 17
