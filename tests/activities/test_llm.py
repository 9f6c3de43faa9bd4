"""Classification of chat-completions failures (the activity outside a worker)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.llm import LLMActivities
from tests.scripted_llm import Drop, HTTPError, RawBody, ScriptedLLM
from workflows.activity_io import LLMRequest
from workflows.chat_messages import ChatMessage


@pytest.fixture
async def activities(llm: ScriptedLLM) -> AsyncIterator[LLMActivities]:
    async with httpx.AsyncClient() as http:
        yield LLMActivities(http, llm.base_url, api_key="sk-test")


def _request(model: str) -> LLMRequest:
    return LLMRequest(model=model, messages=[ChatMessage(role="user", content="hi")])


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
async def test_retryable_statuses(activities: LLMActivities, llm: ScriptedLLM, status: int) -> None:
    llm.script("m", HTTPError(status, "busy", headers={"Retry-After": "7"}))
    with pytest.raises(ApplicationError) as err:
        await activities.chat_completion(_request("m"))
    assert not err.value.non_retryable
    assert err.value.next_retry_delay == timedelta(seconds=7)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_final_with_the_providers_message(
    activities: LLMActivities, llm: ScriptedLLM, status: int
) -> None:
    llm.script("m", HTTPError(status, "Incorrect API key provided"))
    with pytest.raises(ApplicationError) as err:
        await activities.chat_completion(_request("m"))
    assert err.value.non_retryable and err.value.type == "LLMRequestRejected"
    assert f"{status} from 127.0.0.1: Incorrect API key provided" in err.value.message


async def test_malformed_bodies_are_retryable(activities: LLMActivities, llm: ScriptedLLM) -> None:
    llm.script("m", RawBody("not json"), RawBody('{"choices": []}'), RawBody('{"choices": [{"message": null}]}'))
    for _ in range(3):
        with pytest.raises(ApplicationError) as err:
            await activities.chat_completion(_request("m"))
        assert err.value.type == "LLMMalformedReply" and not err.value.non_retryable


async def test_lenient_tool_calls_are_normalised(activities: LLMActivities, llm: ScriptedLLM) -> None:
    call = {"function": {"name": "s__t", "arguments": {"a": 1}}}
    body = json.dumps({"choices": [{"message": {"role": "assistant", "tool_calls": [call]}}]})
    llm.script("m", RawBody(body))
    reply = await activities.chat_completion(_request("m"))
    [call] = reply.message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == ("call_0", "s__t", '{"a": 1}')
    assert reply.usage.prompt_tokens == 0


async def test_unreachable_endpoint_is_retryable() -> None:
    async with httpx.AsyncClient() as http:
        activities = LLMActivities(http, "http://127.0.0.1:9/v1")
        with pytest.raises(ApplicationError) as err:
            await activities.chat_completion(_request("m"))
    assert err.value.type == "LLMUnavailable" and not err.value.non_retryable


async def test_api_key_is_sent_as_bearer(activities: LLMActivities, llm: ScriptedLLM) -> None:
    llm.script("m", RawBody('{"choices": [{"message": {"role": "assistant", "content": "ok"}}]}'))
    reply = await activities.chat_completion(_request("m"))
    assert reply.message.content == "ok"
    assert llm.headers[-1]["authorization"] == "Bearer sk-test"


async def test_a_connection_dropped_mid_body_is_retryable(activities: LLMActivities, llm: ScriptedLLM) -> None:
    llm.script("m", Drop())
    with pytest.raises(ApplicationError) as err:
        await activities.chat_completion(_request("m"))
    assert err.value.type == "LLMUnavailable" and not err.value.non_retryable
    assert "RemoteProtocolError" in err.value.message
