"""`orch` without a running stack: what it imports, what `orch dev` refuses before starting
anything, and how runs read on the terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from api.cli.dev_stack import DevOptions, DevStack
from api.cli.render import event_line, status_view, waiting_for
from tests.conftest import REPO_ROOT
from tests.orch_cli import run_orch
from tests.scripted_llm import free_port
from tests.waiting import eventually


def test_client_commands_do_not_import_the_engine() -> None:
    """`orch list`, `status`, `approve`... start fast: no Temporal SDK, MCP SDK, FastAPI or workflow."""
    probe = "import sys, api.cli.main; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], cwd=REPO_ROOT, check=True, capture_output=True, text=True
        ).stdout.split()
    )
    engine = {"temporalio", "mcp", "fastapi", "uvicorn", "workflows.orchestration", "activities", "worker"}
    assert not {name for name in loaded if name in engine or name.split(".")[0] in engine - {"workflows"}}


async def test_dev_help_says_what_each_port_is_and_its_default() -> None:
    code, out, _ = await run_orch("dev", "--help")
    assert code == 0
    flat = " ".join(out.split())
    for help_text in (
        "--api-port API_PORT port of the API (default: 8000",
        "--temporal-port TEMPORAL_PORT port of Temporal's gRPC (default: 7233)",
        "--ui-port UI_PORT port of the Temporal web UI (default: 8233)",
        "--model-port MODEL_PORT port of the demo model, without OPENAI_BASE_URL (default: 8400)",
    ):
        assert help_text in flat, flat
    assert "(default: .orch" in out


def _config(tmp_path: Path, servers: dict) -> str:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return str(path)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ORCH_MCP_CONFIG": "{missing}"}, "cannot read it"),
        ({"ORCH_MCP_CONFIG": "{broken}"}, "not valid JSON"),
        ({"ORCH_MCP_CONFIG": "{typo}"}, "command 'mcp-server-tyme' is not installed"),
        ({"ORCH_ENCRYPTION_KEY": "not-a-key"}, "ORCH_ENCRYPTION_KEY"),
        ({"ORCH_API_KEYS": '{"keys": [{"name": "x"}]}'}, "keys"),
        ({"ORCH_MAX_REQUEST_BYTES": "lots"}, "ORCH_MAX_REQUEST_BYTES"),
        ({"ORCH_SECRETS_KEY": "not-a-key"}, "ORCH_SECRETS_KEY: each key must be 32 url-safe base64-encoded bytes"),
    ],
)
async def test_dev_refuses_a_broken_config_before_starting_anything(tmp_path: Path, env: dict, says: str) -> None:
    files = {
        "{missing}": str(tmp_path / "absent.json"),
        "{broken}": str(tmp_path / "broken.json"),
        "{typo}": _config(tmp_path, {"time": {"command": "mcp-server-tyme"}}),
    }
    (tmp_path / "broken.json").write_text("{not json")
    env = {key: files.get(value, value) for key, value in env.items()}
    state = tmp_path / "state"
    code, out, err = await run_orch("dev", "--state-dir", str(state), **env)
    assert code == 1 and "starting" not in out, out + err
    assert says in err and err.startswith("orch: ") and err.count("\n") == 1, err
    assert not state.exists()  # no logs, Temporal file, store or secrets key


@pytest.mark.parametrize(
    ("database_url", "says"),
    [
        ("sqlite:///{tmp}/absent/orch.db", "ORCH_DATABASE_URL: the SQLite file's directory {tmp}/absent does not"),
        ("mysql://db.example/orch", "cannot migrate the store: ORCH_DATABASE_URL: 'mysql' is not supported"),
        (
            "postgresql://orch:pw@127.0.0.1:{closed}/orch",
            "cannot migrate the store postgresql://orch:***@127.0.0.1:{closed}/orch: ",
        ),
    ],
)
async def test_dev_says_in_one_line_why_the_store_cannot_be_migrated(
    tmp_path: Path, database_url: str, says: str
) -> None:
    values = {"tmp": str(tmp_path), "closed": str(free_port())}
    state = tmp_path / "state"
    code, out, err = await run_orch(
        "dev", *_free_ports(), "--state-dir", str(state), ORCH_DATABASE_URL=database_url.format(**values)
    )
    assert code == 1 and "starting" not in out, out + err
    assert err.startswith("orch: " + says.format(**values)) and err.count("\n") == 1, err
    assert "pw" not in err
    assert not (state / "logs").exists() and not (state / "temporal.db").exists()


async def test_dev_refuses_a_damaged_secrets_key_file(tmp_path: Path) -> None:
    (tmp_path / "secrets.key").write_text("not a key\n")
    code, out, err = await run_orch("dev", *_free_ports(), "--state-dir", str(tmp_path))
    assert code == 1 and "starting" not in out, out + err
    assert err.startswith(f"orch: the secrets key {tmp_path / 'secrets.key'} is not usable"), err
    assert "delete it to make a new one" in err and err.count("\n") == 1, err
    assert (tmp_path / "secrets.key").read_text() == "not a key\n"  # kept for the user to restore


def _free_ports() -> list[str]:
    return [
        *("--api-port", str(free_port()), "--temporal-port", str(free_port())),
        *("--ui-port", str(free_port()), "--model-port", str(free_port())),
    ]


async def test_secrets_key_prints_a_new_fernet_key_alone() -> None:
    first, second = await run_orch("keys", "secrets-key"), await run_orch("keys", "secrets-key")
    assert first[0] == 0 and first[2] == "", first
    assert first[1].endswith("\n") and first[1].count("\n") == 1  # for $(orch keys secrets-key)
    key = first[1].strip()
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"sealed")) == b"sealed"
    assert second[1].strip() != key


async def test_a_child_that_exits_is_named_with_the_last_line_it_wrote(tmp_path: Path) -> None:
    stack = DevStack(DevOptions(state_dir=tmp_path))
    say = "import sys; print('starting'); sys.stderr.write('worker: MCP config x: not valid JSON\\n'); sys.exit(2)"
    stack.spawn("worker", [sys.executable, "-c", say], {})
    try:
        reason = await eventually(stack.exited, "the child exited")
    finally:
        stack.stop()
    log = tmp_path / "logs" / "worker.log"
    assert reason == f"worker exited with code 2: worker: MCP config x: not valid JSON (log: {log})"


RUN = {
    "id": "orch-1",
    "status": "waiting_for_approval",
    "model": "demo",
    "step": 1,
    "max_steps": 10,
    "steps": [
        {"index": 0, "kind": "llm", "status": "completed", "step": 1},
        {"index": 1, "kind": "tool", "status": "completed", "step": 1, "server": "time", "tool": "get_current_time"},
        {"index": 2, "kind": "tool", "status": "pending", "step": 1, "server": "time", "tool": "convert_time"},
    ],
    "pending_approvals": [
        {"tool_call_id": "call_9", "server": "time", "tool": "convert_time", "arguments": {"time": "09:00"}},
    ],
}


def test_status_numbers_steps_as_the_ui_and_names_the_model() -> None:
    view = status_view(RUN)
    table = view.split("\n\n")[1].splitlines()
    assert table[0].split() == ["step", "kind", "what", "status", "decision", "output"]
    assert table[1].split() == ["1", "llm", "demo", "completed"]
    assert table[2].split()[:3] == ["1", "tool", "time.get_current_time"]
    assert "orch approve orch-1 call_9" in view


def test_progress_lines_use_the_loop_step_not_the_record_index() -> None:
    started = {"type": "llm_started", "step_index": 4, "data": {"model": "demo", "step": 2}}
    tool = {"type": "tool_started", "step_index": 5, "data": {"server": "time", "tool": "convert_time", "step": 2}}
    assert event_line(started) == "  step 2: llm demo running"
    assert event_line(tool) == "  step 2: tool time.convert_time running"


def test_the_tools_a_run_pinned_are_one_line() -> None:
    listed = {
        "type": "tools_listed",
        "data": {
            "servers": [{"server": "time", "tools": [{"name": "a"}, {"name": "b"}]}],
            "unavailable": {"x": "down"},
        },
    }
    assert event_line(listed) == "  tools: time (2 tools), x unavailable: down"
    assert event_line({"type": "tools_listed", "data": {"servers": [], "unavailable": {}}}) == "  tools: none"


def test_what_a_run_waits_for_is_each_tool_and_call() -> None:
    assert waiting_for(RUN) == "time.convert_time (call_9)"
    assert waiting_for({"pending_approvals": []}) == ""
