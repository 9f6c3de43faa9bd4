"""Attack: get a gated call auto-approved, or run, with arguments its tool never accepts.

The model (scripted here, a prompt-injected one in life) sends `amount` as the string
`"100000"`, which a `maximum` rule ignores and a server would coerce, and a negative amount,
which a rule bounded on one side admits. The rules are the README's own, read from it, so
what the README tells operators to write is what is attacked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import APIFactory
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from workflows.tool_calls import schema_problem

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_rules() -> dict[str, Any]:
    """The `auto_approve_rules` example of the README."""
    [block] = [b for b in re.findall(r"```json\n(.*?)```", README, re.DOTALL) if "auto_approve_rules" in b]
    rules: dict[str, Any] = json.loads(block)["auto_approve_rules"]
    return rules


async def test_a_string_amount_never_reaches_a_rule_a_person_or_the_server(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-confused",
        Reply(
            tool_calls=[
                tool_call("typed", "toolbox__transfer", {"account": "mallory", "amount": "100000"}),
                tool_call("negative", "toolbox__transfer", {"account": "mallory", "amount": -1000000}),
                tool_call("small", "toolbox__transfer", {"account": "acme", "amount": 50}),
            ]
        ),
        Reply(content="done"),
    )
    server = toolbox_stdio(call_log, auto_approve_rules={"transfer": readme_rules()["transfer"]})
    async with api_stack({"toolbox": server}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-confused"})).json()["id"]
        waiting = await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        assert [p["tool_call_id"] for p in waiting["pending_approvals"]] == ["negative"], "only a person may decide"
        decision = {"tool_call_id": "negative", "decision": "deny", "approver": "alice"}
        assert (await api.http.post(f"/v1/orchestrations/{run_id}/approvals", json=decision)).status_code == 200
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert [c["arguments"] for c in call_log.calls("transfer")] == [{"account": "acme", "amount": 50}]
    steps = {s["tool_call_id"]: s for s in final["steps"] if s["kind"] == "tool"}
    assert (steps["typed"]["status"], steps["typed"]["approver"], steps["typed"]["decision"]) == ("error", None, None)
    assert steps["small"]["approver"] == "rule:small"
    shown = llm.requests_for("m-confused")[1]["messages"]
    told = {m["tool_call_id"]: m["content"] for m in shown if m["role"] == "tool"}
    assert told["typed"] == (
        "error: arguments do not match the input schema of toolbox__transfer: amount: '100000' is not of type 'number'"
    )


@pytest.mark.parametrize(
    ("path", "admitted"),
    [
        ("/tmp/report.txt", True),
        ("/tmp/../etc/passwd", False),
        ("/tmp/..", False),
        ("/tmp/.ssh", False),
        ("/tmp/a/../../etc/passwd", False),
        ("/etc/passwd", False),
        ("/tmp/", False),
        ("//tmp/x", False),
    ],
)
def test_the_readme_path_rule_admits_only_plain_names_in_tmp(path: str, admitted: bool) -> None:
    [rule] = readme_rules()["write_file"]
    assert (schema_problem(rule["arguments"], {"path": path}) is None) == admitted
