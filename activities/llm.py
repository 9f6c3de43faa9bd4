"""The LLM activity: one OpenAI-compatible `POST /chat/completions` call.

Works against OpenAI, vLLM, Ollama, llama.cpp's server and gateways speaking the same
protocol. The shared `httpx.AsyncClient` never retries; failures are classified so that
Temporal retries what may succeed later (408, 409, 429, 5xx, timeouts, dropped
connections, malformed replies) and fails the run at once on what will not (other 4xx),
with the provider's own message.
"""

from __future__ import annotations

import email.utils
import json
import time
from datetime import timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.conversations import Conversations
from activities.heartbeat import heartbeating
from activities.observed import annotate, measured, meter
from activities.redaction import redact
from workflows import metrics
from workflows.activity_io import LLMDeltaRequest, LLMReply, LLMRequest
from workflows.chat_messages import ChatMessage
from workflows.contract import CHAT_COMPLETION_ACTIVITY, CHAT_COMPLETION_DELTA_ACTIVITY
from workflows.messages import TokenUsage

RETRYABLE_STATUS = {408, 409, 429}
DEFAULT_LLM_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class LLMActivities:
    """Chat completions over one shared HTTP client per worker (injected)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | None = None,
        conversations: Conversations | None = None,
    ) -> None:
        self._http = http
        self._conversations = conversations or Conversations()
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._api_key = api_key

    @activity.defn(name=CHAT_COMPLETION_ACTIVITY)
    async def chat_completion(self, request: LLMRequest) -> LLMReply:
        """Ask the model for its next message."""
        return await self._complete(request)

    @activity.defn(name=CHAT_COMPLETION_DELTA_ACTIVITY)
    async def chat_completion_delta(self, request: LLMDeltaRequest) -> LLMReply:
        """The same, sent only what changed in the run's conversation since its previous call."""
        return await self._complete(await self._conversations.request(request))

    async def _complete(self, request: LLMRequest) -> LLMReply:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [message.model_dump(mode="json", exclude_none=True) for message in request.messages],
        }
        if request.tools:
            body["tools"] = request.tools
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        with measured(metrics.LLM_CALLS, metrics.LLM_CALL_LATENCY, {"model": request.model}) as outcome:
            try:
                async with heartbeating():
                    response = await self._http.post(self._url, json=body, headers=self._headers)
            except httpx.TimeoutException as err:
                raise ApplicationError(f"LLM endpoint timed out: {type(err).__name__}", type="LLMTimeout") from None
            except httpx.TransportError as err:
                raise ApplicationError(
                    f"LLM endpoint unreachable: {type(err).__name__}: {redact(str(err), [self._api_key])}",
                    type="LLMUnavailable",
                ) from None
            _raise_for_status(response, self._api_key)
            reply = parse_reply(response, self._api_key)
            outcome["outcome"] = "ok"
        usage = reply.usage
        metrics.count(meter(), metrics.LLM_TOKENS, {"model": request.model, "kind": "prompt"}, usage.prompt_tokens)
        metrics.count(
            meter(), metrics.LLM_TOKENS, {"model": request.model, "kind": "completion"}, usage.completion_tokens
        )
        annotate(
            {
                "gen_ai.request.model": request.model,
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
            }
        )
        return reply


def _raise_for_status(response: httpx.Response, api_key: str | None = None) -> None:
    """Raise the provider's error, its words redacted (providers echo the credentials sent)."""
    status = response.status_code
    if status < 400:
        return
    message = f"{status} from {response.request.url.host}: {redact(_provider_message(response), [api_key])}"
    if status in RETRYABLE_STATUS or status >= 500:
        raise ApplicationError(
            f"LLM endpoint busy or failing: {message}",
            type="LLMUnavailable",
            next_retry_delay=_retry_after(response),
        )
    raise ApplicationError(f"LLM request rejected: {message}", type="LLMRequestRejected", non_retryable=True)


def parse_reply(response: httpx.Response, api_key: str | None = None) -> LLMReply:
    """The first choice's message; tool-call arguments are kept as the model's raw text."""
    try:
        payload = response.json()
    except ValueError:
        shown = redact(response.text[:200], [api_key])
        raise ApplicationError(f"LLM reply is not JSON: {shown!r}", type="LLMMalformedReply") from None
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
        shown = redact(str(payload)[:200], [api_key])
        raise ApplicationError(f"LLM reply has no choices: {shown}", type="LLMMalformedReply")
    reply = choices[0]["message"]
    # Only the standard fields go into the conversation: provider extras (reasoning text,
    # annotations) are not meant to be sent back, and some endpoints reject them.
    raw = {
        "role": "assistant",
        "content": reply.get("content"),
        "tool_calls": [_normalise_tool_call(call, i) for i, call in enumerate(reply.get("tool_calls") or [])] or None,
    }
    usage = payload.get("usage") or {}
    return LLMReply(
        message=ChatMessage.model_validate(raw),
        usage=TokenUsage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        ),
        finish_reason=choices[0].get("finish_reason"),
    )


def _normalise_tool_call(call: Any, position: int) -> dict[str, Any]:
    """Accept the small deviations of OpenAI-compatible servers (dict arguments, missing ids)."""
    call = call if isinstance(call, dict) else {}
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": str(call.get("id") or f"call_{position}"),
        "type": "function",
        "function": {"name": str(function.get("name") or ""), "arguments": arguments},
    }


def _provider_message(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    if isinstance(payload, dict) and payload.get("message"):
        return str(payload["message"])
    return json.dumps(payload)[:500]


def _retry_after(response: httpx.Response) -> timedelta | None:
    """`Retry-After` in seconds or as an HTTP date; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return timedelta(seconds=max(0.0, when.timestamp() - time.time()))
