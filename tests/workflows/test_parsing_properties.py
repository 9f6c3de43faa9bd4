"""Property tests (hypothesis): parsing the model's tool calls, the MCP config and the API keys
setting never crashes."""

from __future__ import annotations

import json
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import given, settings
from hypothesis import strategies as st

from activities.mcp_config import MCPConfigError, load_mcp_config
from api.api_keys import APIKeysError, load_api_keys
from workflows.activity_io import CatalogTool, ToolCatalog
from workflows.chat_messages import FunctionCall, LLMToolCall
from workflows.scopes import scope_allows
from workflows.tool_calls import open_tool_call, unwrap_model_intent

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
ARGUMENTS = st.dictionaries(st.sampled_from(["model_intent", "properties", "a", "text"]) | st.text(max_size=8), JSON)
CATALOG = ToolCatalog(
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
    opened = open_tool_call(LLMToolCall(id="c", function=FunctionCall(name="s__t", arguments=raw)), CATALOG, 0, 1)
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


KEY_ENTRY = st.dictionaries(
    st.sampled_from(["name", "sha256", "roles", "mcp_scopes"]) | st.text(max_size=8),
    JSON | st.sampled_from(["run", "approve", "admin", "a" * 64, "0" * 64]) | st.lists(st.sampled_from(["run", "x"])),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["keys"]) | st.text(max_size=5), st.lists(KEY_ENTRY, max_size=3) | JSON) | JSON)
def test_any_api_keys_setting_loads_or_fails_with_one_clear_line(document: object) -> None:
    try:
        ring = load_api_keys(json.dumps(document) if isinstance(document, dict) else "{" + json.dumps(document))
    except APIKeysError as err:
        assert str(err).startswith("ORCH_API_KEYS: ") and "\n" not in str(err)
    else:
        assert ring is not None and ring.authenticate("orch_not-a-key") is None


NAME = st.text(alphabet="ab-_", min_size=1, max_size=6)


@given(st.lists(NAME, max_size=3), NAME, NAME, NAME)
def test_a_scope_admits_what_it_names_and_nothing_else(others: list[str], server: str, tool: str, other: str) -> None:
    assert scope_allows(None, server, tool)
    assert not scope_allows([], server, tool)
    assert scope_allows([*others, server], server, tool), "a server entry admits all its tools"
    assert scope_allows([f"{server}.{tool}"], server, tool) and scope_allows([f"{server}.{tool}"], server)
    assert scope_allows([f"{server}.{tool}"], server, other) == (other == tool)
    assert scope_allows([f"{server}.{tool}", *others], other + "x") == (other + "x" in others)


def test_scopes_work_for_names_with_dots() -> None:
    assert scope_allows(["files.v2.read.file"], "files.v2", "read.file")
    assert not scope_allows(["files.v2.read.file"], "files.v2", "write.file")
    assert scope_allows(["github.*"], "github", "create_issue") and not scope_allows(["github.*"], "gitlab")
