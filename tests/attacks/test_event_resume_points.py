"""Attack: poison a run's event stream with a resume point far past its events.

`?after=10**30` (or a `Last-Event-ID` of that size) used to freeze every other watcher of the
run, and a finished run's stream given such a point never ended (polling Temporal for an
hour). A `Last-Event-ID` of `²` (a digit to `str.isdigit`, not to `int`) was a 500.
"""

from __future__ import annotations

import asyncio

from api.events import RunEventsHub
from tests.api.conftest import APIFactory, collect
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually

FAR = 10**17


async def test_a_resume_point_past_the_runs_events_neither_freezes_others_nor_outlives_the_run(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-poison",
        Reply(tool_calls=[tool_call("pay", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="paid"),
    )
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-poison"})).json()["id"]
        path = f"/v1/orchestrations/{run_id}/events"
        await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        poisoner = asyncio.create_task(collect(api.http, f"{path}?after={FAR}"))
        header_poisoner = asyncio.create_task(collect(api.http, path, last_event_id=FAR))
        watcher = asyncio.create_task(collect(api.http, path))
        # "From now on" is where the run is when a stream first sees it: let all three streams
        # follow the run, and its watcher poll twice since, before the approval moves it on.
        hub: RunEventsHub = api.app.state.events
        await eventually(lambda: hub.watchers(run_id) == 3, "three streams following the run")
        polled = hub.fetches
        await eventually(lambda: hub.fetches >= polled + 2, "the run's watcher polled since")
        decision = {"tool_call_id": "pay", "decision": "approve"}
        assert (await api.http.post(f"/v1/orchestrations/{run_id}/approvals", json=decision)).status_code == 200
        watched, poisoned, header_poisoned = await asyncio.gather(watcher, poisoner, header_poisoner)
        finished = await collect(api.http, f"{path}?after={FAR}")
    assert [int(e["id"]) for e in watched] == list(range(1, len(watched) + 1)) and watched[-1]["event"] == "completed"
    for stream in (poisoned, header_poisoned):
        assert stream and stream[-1] == watched[-1], "resumed from the run's newest event, to its end"
    assert finished == [], "a finished run's stream past its events ends at once"


async def test_resume_points_that_are_not_event_ids_are_refused(api_stack: APIFactory, llm: ScriptedLLM) -> None:
    llm.script("m-bad-resume", Reply(content="hi"))
    async with api_stack() as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "x", "model": "m-bad-resume"})).json()["id"]
        path = f"/v1/orchestrations/{run_id}/events"
        # Header bytes are read as Latin-1: b"\xb2" arrives as "²", which str.isdigit() accepts.
        for header in (b"\xb2", "١٢".encode(), b"1e3", b"-1", b"9" * 19):
            answer = await api.http.get(path, headers={"Last-Event-ID": header})
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_last_event_id", header
        too_far = await api.http.get(path, params={"after": 10**30})
        assert too_far.status_code == 422, too_far.text
