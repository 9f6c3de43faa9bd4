"""The rule-based demo model behind `orch dev` (offline)."""

from __future__ import annotations

import json

from api.cli.demo_model import next_message


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_asks_for_the_current_time_in_a_known_city() -> None:
    [call] = next_message(_user("What time is it in Tokyo?"))["tool_calls"]
    assert call["function"]["name"] == "time__get_current_time"
    assert json.loads(call["function"]["arguments"]) == {"timezone": "Asia/Tokyo"}


def test_converts_a_time_between_two_known_places() -> None:
    [call] = next_message(_user("convert 9:00 UTC to Paris"))["tool_calls"]
    assert call["function"]["name"] == "time__convert_time"
    assert json.loads(call["function"]["arguments"]) == {
        "source_timezone": "UTC",
        "time": "09:00",
        "target_timezone": "Europe/Paris",
    }


def test_answers_from_the_tool_result_and_reports_denials() -> None:
    result = {"timezone": "Asia/Tokyo", "datetime": "2026-11-21T15:09:48+09:00", "day_of_week": "Saturday"}
    answer = next_message([*_user("time in Tokyo"), {"role": "tool", "content": json.dumps(result)}])
    assert answer["content"] == "It is 15:09 on Saturday in Asia/Tokyo."
    denied = next_message([*_user("x"), {"role": "tool", "content": "denied: not now"}])
    assert "denied: not now" in denied["content"]


def test_says_what_it_is_for_anything_else() -> None:
    answer = next_message(_user("write me a poem"))
    assert "tool_calls" not in answer and "demo model" in answer["content"] and "OPENAI_BASE_URL" in answer["content"]
