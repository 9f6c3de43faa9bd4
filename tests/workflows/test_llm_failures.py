"""How the run reacts to a failing or misbehaving LLM endpoint."""

from __future__ import annotations

import time

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.conftest import WorkerFactory
from tests.scripted_llm import Drop, HTTPError, RawBody, Reply, ScriptedLLM
from tests.waiting import result_of


def _timed(turn):
    """Wrap a turn to record when the server answered it."""
    stamps: list[float] = []

    def answer(_: dict):
        stamps.append(time.monotonic())
        return turn

    answer.stamps = stamps  # type: ignore[attr-defined]
    return answer


async def test_503_is_retried_and_the_run_completes(run_worker: WorkerFactory, llm: ScriptedLLM) -> None:
    llm.script("m-503", HTTPError(503, "overloaded"), Reply(content="fine now"))
    async with run_worker() as h:
        final = await result_of(await h.start({"input": "hi", "model": "m-503"}))
    assert final.status == "completed" and final.output == "fine now"
    assert len(llm.requests_for("m-503")) == 2


@pytest.mark.parametrize("llm_call", ["activity", "local_activity"])
async def test_429_retry_waits_for_retry_after(run_worker: WorkerFactory, llm: ScriptedLLM, llm_call: str) -> None:
    limited, ok = _timed(HTTPError(429, "slow down", headers={"Retry-After": "3"})), _timed(Reply(content="ok"))
    llm.script("m-429", limited, ok)
    async with run_worker() as h:
        final = await result_of(await h.start({"input": "hi", "model": "m-429", "llm_call": llm_call}))
    assert final.output == "ok"
    # The default first retry would come after 1 s; Retry-After asked for 3.
    assert ok.stamps[0] - limited.stamps[0] >= 2.9


async def test_malformed_replies_are_retried(run_worker: WorkerFactory, llm: ScriptedLLM) -> None:
    llm.script("m-bad", RawBody("<html>gateway</html>"), RawBody('{"choices": []}'), Reply(content="recovered"))
    async with run_worker() as h:
        final = await result_of(await h.start({"input": "hi", "model": "m-bad"}))
    assert final.output == "recovered" and len(llm.requests_for("m-bad")) == 3


async def test_a_dropped_connection_is_retried(run_worker: WorkerFactory, llm: ScriptedLLM) -> None:
    llm.script("m-drop", Drop(), Reply(content="reconnected"))
    async with run_worker() as h:
        final = await result_of(await h.start({"input": "hi", "model": "m-drop"}))
    assert final.output == "reconnected" and len(llm.requests_for("m-drop")) == 2


@pytest.mark.parametrize("llm_call", ["activity", "local_activity"])
async def test_400_fails_the_run_with_the_providers_message(
    run_worker: WorkerFactory, llm: ScriptedLLM, llm_call: str
) -> None:
    llm.script("m-400", HTTPError(400, "The model `m-400` does not exist"))
    async with run_worker() as h:
        handle = await h.start({"input": "hi", "model": "m-400", "llm_call": llm_call})
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await h.status(handle)
        description = await handle.describe()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "OrchestrationFailed"
    assert "The model `m-400` does not exist" in cause.message
    assert len(llm.requests_for("m-400")) == 1, "a 400 is not retried"
    assert status.status == "failed" and status.stop_reason == "error"
    assert "400" in (status.error or "") and "does not exist" in (status.error or "")
    assert description.status == WorkflowExecutionStatus.FAILED
    memo = await description.memo_value("orchestration")
    assert memo["status"] == "failed"
