"""The MCP config file: format, validation and policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activities.mcp_config import MCPConfig, MCPConfigError, load_mcp_config, resolve_placeholders


def _write(tmp_path: Path, servers: dict) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def test_design_example_parses_with_defaults(tmp_path: Path) -> None:
    config = load_mcp_config(
        _write(
            tmp_path,
            {
                "time": {
                    "command": "mcp-server-time",
                    "args": [],
                    "env": {},
                    "tools_to_execute": ["*"],
                    "tools_to_auto_execute": ["get_current_time"],
                },
                "github": {
                    "url": "https://example.invalid/mcp",
                    "transport": "streamable_http",
                    "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"},
                    "tool_deny_list": ["delete_repository"],
                    "model_intent": True,
                    "tool_pricing": {"create_issue": 0.002},
                },
                "legacy": {"url": "http://127.0.0.1:1/sse", "transport": "sse", "disabled": True},
            },
        )
    )
    assert config.servers["time"].transport == "stdio"
    assert config.servers["github"].headers["Authorization"] == "Bearer ${GITHUB_TOKEN}", "kept unresolved"
    assert config.enabled_servers() == ["time", "github"]
    time, github = config.servers["time"], config.servers["github"]
    assert time.policy_for("get_current_time") == "auto_execute"
    assert time.policy_for("convert_time") == "execute"
    assert github.policy_for("delete_repository") == "denied"
    assert github.policy_for("create_issue") == "execute", "by default every call waits for a human"


def test_url_defaults_to_streamable_http_and_type_alias_is_accepted() -> None:
    config = MCPConfig.model_validate(
        {"mcpServers": {"a": {"url": "http://h/mcp"}, "b": {"type": "http", "url": "http://h/mcp"}}}
    )
    assert config.servers["a"].transport == config.servers["b"].transport == "streamable_http"


def test_deny_list_wins_over_both_lists() -> None:
    config = MCPConfig.model_validate(
        {"mcpServers": {"s": {"command": "x", "tools_to_auto_execute": ["*"], "tool_deny_list": ["rm*"]}}}
    )
    server = config.servers["s"]
    assert server.policy_for("rm_rf") == "denied" and server.policy_for("ls") == "auto_execute"


def test_empty_include_list_offers_nothing() -> None:
    server = MCPConfig.model_validate({"mcpServers": {"s": {"command": "x", "tools_to_execute": []}}}).servers["s"]
    assert server.policy_for("anything") is None


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ({"s": {"command": "x", "transport": "pigeon"}}, "s.transport"),
        ({"s": {"transport": "sse"}}, "transport sse needs `url`"),
        ({"s": {"env": {}}}, "needs `command` (stdio) or `url`"),
        ({"s": {"command": "x", "tool_pricing": {"t": -1}}}, "must not be negative"),
        ({"s": {"command": "x", "comand_typo": 1}}, "comand_typo"),
        (
            {"s": {"command": "x", "auto_approve_rules": {"t": [{"arguments": {"type": "nonsense"}}]}}},
            "not a valid JSON Schema",
        ),
        (
            {"s": {"command": "x", "auto_approve_rules": {"t": [{"when": {}}]}}},
            "auto_approve_rules.t.0.arguments: Field required",
        ),
        (
            {"s": {"command": "x", "tool_deny_list": ["t"], "auto_approve_rules": {"t": [{"arguments": {}}]}}},
            "auto_approve_rules name tools in tool_deny_list",
        ),
    ],
)
def test_invalid_entries_name_the_file_and_the_problem(tmp_path: Path, servers: dict, message: str) -> None:
    with pytest.raises(MCPConfigError) as err:
        load_mcp_config(_write(tmp_path, servers))
    assert str(err.value).startswith(f"MCP config {tmp_path / 'mcp.json'}: ") and message in str(err.value)


def test_no_config_path_means_no_servers() -> None:
    assert load_mcp_config(None).servers == {}


def test_placeholders_resolve_from_the_environment_and_missing_ones_are_named() -> None:
    assert resolve_placeholders({"A": "Bearer ${T}", "B": "plain"}, {"T": "tok"}) == {"A": "Bearer tok", "B": "plain"}
    with pytest.raises(MCPConfigError, match="GITHUB_TOKEN is not set"):
        resolve_placeholders({"A": "${GITHUB_TOKEN}"}, {})


def test_a_control_character_in_a_name_keeps_the_error_on_one_line(tmp_path: Path) -> None:
    """Found by the property test: a server named "\\n" made a two-line message."""
    with pytest.raises(MCPConfigError) as err:
        load_mcp_config(_write(tmp_path, {"\n": {}}))
    assert "\n" not in str(err.value) and "mcpServers.\\n: needs `command`" in str(err.value)
