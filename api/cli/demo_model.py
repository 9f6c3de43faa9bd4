"""The `demo` model: a rule-based stand-in for an LLM, served as an OpenAI-compatible
chat-completions endpoint, so `orch dev` works offline.

It is not a language model. It understands two kinds of request and nothing else:
- "what time is it in Tokyo" -> calls `time__get_current_time` (auto-approved in the demo);
- "convert 9:00 UTC to Paris" -> calls `time__convert_time` (waits for a human approval).
After a tool result it answers with that result; anything else gets an explanation of
what it can do. Point OPENAI_BASE_URL at a real endpoint to use a real model.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MODEL_NAME = "demo"

# City names the demo knows, mapped to IANA time zones.
CITIES = {
    "tokyo": "Asia/Tokyo",
    "paris": "Europe/Paris",
    "london": "Europe/London",
    "new york": "America/New_York",
    "berlin": "Europe/Berlin",
    "sydney": "Australia/Sydney",
    "utc": "UTC",
}
_CONVERT = re.compile(r"convert\s+(\d{1,2}):?(\d{2})?\s*(?:am|pm)?\s+(\w[\w ]*?)\s+to\s+(\w[\w ]*)", re.IGNORECASE)


def _zone(name: str) -> str | None:
    return CITIES.get(name.strip().lower().rstrip("?.!"))


def next_message(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The demo's reply to a conversation: a tool call, or text."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return {"role": "assistant", "content": _summarise(str(last.get("content") or ""))}
    text = str(last.get("content") or "")
    call_id = f"call_{int(time.time() * 1000) % 10**9}"
    match = _CONVERT.search(text)
    if match:
        hour, minute, source, target = match.groups()
        source_zone, target_zone = _zone(source), _zone(target)
        if source_zone and target_zone:
            arguments = {
                "source_timezone": source_zone,
                "time": f"{int(hour):02d}:{minute or '00'}",
                "target_timezone": target_zone,
            }
            return _tool_call(call_id, "time__convert_time", arguments)
    if "time" in text.lower():
        for city, zone in CITIES.items():
            if city in text.lower():
                return _tool_call(call_id, "time__get_current_time", {"timezone": zone})
    return {
        "role": "assistant",
        "content": 'I am the demo model, a rule-based stand-in for an LLM. Try "what time is it in Tokyo" '
        'or "convert 9:00 UTC to Paris". Set OPENAI_BASE_URL to use a real model.',
    }


def _tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        ],
    }


def _summarise(tool_output: str) -> str:
    if tool_output.startswith("denied:"):
        return f"I did not run the tool ({tool_output}). Anything else?"
    if tool_output.startswith("error:"):
        return f"The tool failed: {tool_output}"
    try:
        data = json.loads(tool_output)
    except ValueError:
        return f"The tool said: {tool_output}"
    if "source" in data and "target" in data:
        source, target = data["source"], data["target"]
        before, after = source["datetime"][11:16], target["datetime"][11:16]
        return f"{before} in {source['timezone']} is {after} in {target['timezone']}."
    if "datetime" in data:
        return f"It is {data['datetime'][11:16]} on {data.get('day_of_week', 'today')} in {data.get('timezone')}."
    return f"The tool said: {tool_output}"


async def chat_completions(request: Request) -> JSONResponse:
    body = await request.json()
    message = next_message(body.get("messages") or [])
    return JSONResponse(
        {
            "id": f"chatcmpl-demo-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "model": MODEL_NAME,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
    )


app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the rule-based demo model (OpenAI-compatible).")
    parser.add_argument("--port", type=int, default=8400)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
