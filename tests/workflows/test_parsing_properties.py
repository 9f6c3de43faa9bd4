"""Property tests (hypothesis): parsing the model's tool calls and the MCP config never crashes."""

from __future__ import annotations

import json
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import given, settings
from hypothesis import strategies as st

from activities.mcp_config import MCPConfigError, load_mcp_config
from workflows.messages import CatalogTool, FunctionCall, LLMToolCall, ToolCatalog
from workflows.tool_calls import open_tool_call, unwrap_model_intent

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
ARGUMENTS = st.dictionaries(st.sampled_from(["model_intent", "properties", "a", "text"]) | st.text(max_size=8), JSON)
CATALOG = ToolCatalog(
    default_model="m",
    tools=[CatalogTool(server="s", tool="t", function_name="s__t", input_schema={"type": "object"}, model_intent=True)],
)


@given(ARGUMENTS)
def test_unwrap_model_intent_always_returns_arguments_and_an_optional_intent(arguments: dict) -> None:
    unwrapped, intent = unwrap_model_intent(arguments)
    assert isinstance(unwrapped, dict)
    assert intent is None or isinstance(intent, str)
    assert "model_intent" not in unwrapped or "properties" in arguments


@given(st.text(max_size=200) | ARGUMENTS.map(json.dumps))
def test_any_argument_text_becomes_a_call_or_a_problem_for_the_model(raw: str) -> None:
    opened = open_tool_call(LLMToolCall(id="c", function=FunctionCall(name="s__t", arguments=raw)), CATALOG, 0)
    assert (opened.problem is None) == (len(opened.approval_hash) == 64)
    assert isinstance(opened.arguments, dict)


SERVER = st.dictionaries(
    st.sampled_from(
        ["command", "args", "env", "url", "transport", "type", "headers", "tools_to_execute",
         "tools_to_auto_execute", "tool_deny_list", "model_intent", "tool_pricing", "disabled", "cwd"]
    ) | st.text(max_size=8),
    JSON,
    max_size=6,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), SERVER, max_size=3) | JSON)
def test_any_config_file_loads_or_fails_with_one_clear_line(servers: object) -> None:
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "mcp.json"
        path.write_text(json.dumps({"mcpServers": servers}))
        try:
            config = load_mcp_config(path)
        except MCPConfigError as err:
            message = str(err)
            assert message.startswith(f"MCP config {path}: ") and "\n" not in message
        else:
            for server in config.servers.values():
                assert server.transport in ("stdio", "streamable_http", "sse")
