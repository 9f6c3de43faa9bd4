"""`orch dev` as a newcomer runs it, driven through the `orch` commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from tests.conftest import REPO_ROOT, CallLog, toolbox_stdio
from tests.orch_cli import ORCH, run_orch
from tests.scripted_llm import free_port
from tests.waiting import WAIT_SECONDS, eventually

NOT_INHERITED = (
    "OPENAI_BASE_URL",
    "ORCH_MCP_CONFIG",
    "ORCH_API_PORT",
    "ORCH_DATABASE_URL",
    "ORCH_SECRETS_KEY",
    "ORCH_PUBLIC_URL",
)
"""What a newcomer has not set: orch dev chooses these itself."""


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _started(parent: int, *command: str) -> dict[str, str]:
    """The environment of the process below `parent` whose command line ends with `command`."""
    for pid in _descendants(parent):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
            if [arg.decode() for arg in argv[-len(command) :]] == list(command):
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")[:-1]
                return dict(entry.decode().partition("=")[::2] for entry in environ)
        except OSError:
            continue
    raise AssertionError(f"no {command} below {parent}")


class OrchDev:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.ports = {name: free_port() for name in ("api", "temporal", "ui", "model")}
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        # A user whose shell points at another cluster: orch dev's stack still uses its own server.
        env |= {"TEMPORAL_ADDRESS": "elsewhere.example:7233", "TEMPORAL_API_KEY": "k", "TEMPORAL_PROFILE": "absent"}
        # The test adds the toolbox (a stdio server) over the API, which the user allows; the worker
        # checks its servers every second, so the test sees a new server's health soon.
        env |= {"ORCH_MCP_API_COMMANDS": "true", "ORCH_HEALTH_CHECK_SECONDS": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            ORCH, "dev", "--state-dir", str(self.state_dir),
            "--api-port", str(self.ports["api"]), "--temporal-port", str(self.ports["temporal"]),
            "--ui-port", str(self.ports["ui"]), "--model-port", str(self.ports["model"]),
            cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                assert line, "orch dev exited early:\n" + "".join(self.lines)
                self.lines.append(line)
                if "Ctrl-C stops everything" in line:
                    return

    async def interrupt(self) -> tuple[int, set[int]]:
        """Ctrl-C; returns the exit code and the processes that were running below it."""
        assert self.proc is not None
        children = _descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.proc.wait(), WAIT_SECONDS)
        return code, children


async def _status(api_url: str, run_id: str) -> dict:
    code, out, err = await run_orch("status", run_id, "--json", "--api-url", api_url)
    assert code == 0, err
    return json.loads(out)


async def _wait_status(api_url: str, run_id: str, predicate) -> dict:
    async def reached() -> dict | None:
        run = await _status(api_url, run_id)
        return run if predicate(run) else None

    return await eventually(reached, f"the condition on {run_id}", interval=0.3)


async def _health(http: httpx.AsyncClient, server: str) -> str | None:
    """The state of `server` as the worker last checked it (None: not checked yet)."""
    response = await http.get(f"/v1/mcp/servers/{server}")
    assert response.status_code == 200, response.text
    health: dict[str, Any] | None = response.json()["health"]
    return health and health["state"]


async def _tools_of(http: httpx.AsyncClient, server: str) -> set[str]:
    """The tools GET /v1/tools lists for `server` (none while it is not listed)."""
    response = await http.get("/v1/tools")
    if response.status_code != 200:
        return set()  # no worker answered yet
    listed = {entry["name"]: entry["tools"] for entry in response.json()["servers"]}
    return {tool["name"] for tool in listed.get(server, [])}


async def _add_toolbox_and_see_it_used(api_url: str, call_log: CallLog) -> None:
    """The store is there (no 503): a server added over the API is used by the worker."""
    async with httpx.AsyncClient(base_url=api_url, timeout=WAIT_SECONDS) as http:
        listed = await http.get("/v1/mcp/servers")
        assert listed.status_code == 200, listed.text
        assert [(s["name"], s["source"]) for s in listed.json()["servers"]] == [("time", "config")]
        created = await http.post("/v1/mcp/servers", json={"name": "box", **toolbox_stdio(call_log)})
        assert created.status_code == 201, created.text
        # The worker checks a server's health only once it uses the server (with its env opened).
        await eventually(lambda: _health(http, "box"), "the worker checked the new server", interval=0.2)
        assert await _health(http, "box") == "connected"
        tools = await eventually(lambda: _tools_of(http, "box"), "GET /v1/tools lists the new server", interval=0.3)
        assert {"echo", "hold"} <= tools, tools


async def test_orch_dev_demo_flow_and_its_store_then_ctrl_c_leaves_nothing_and_a_restart_keeps_both(
    tmp_path: Path, call_log: CallLog
) -> None:
    dev = OrchDev(tmp_path / "state")
    await dev.start()
    banner = "".join(dev.lines)
    assert f"{dev.api_url}/docs" in banner and f"http://127.0.0.1:{dev.ports['ui']}" in banner
    # The banner's commands reach this API (its port is not the default).
    assert f'orch run --api-url {dev.api_url} "convert 9:00 UTC to Paris"' in banner
    assert "demo model (rule-based, not an LLM)" in banner
    key_file = dev.state_dir / "secrets.key"
    database_url = f"sqlite:///{(dev.state_dir / 'orch.db').resolve()}"
    assert dev.proc is not None
    try:
        # Out of the box: a SQLite store and its secrets key in the state directory.
        assert f"Store:        {database_url} (secrets key: {key_file})" in banner, banner
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        secrets_key = key_file.read_text()
        Fernet(secrets_key.strip())
        # The worker and the API get the store, its key and the API's own URL for OAuth callbacks.
        for command in (["-m", "worker"], ["-m", "api"]):
            env = _started(dev.proc.pid, *command)
            assert env["ORCH_DATABASE_URL"] == database_url and env["ORCH_SECRETS_KEY"] == secrets_key.strip()
            assert env["ORCH_PUBLIC_URL"] == dev.api_url
        assert "ORCH_SECRETS_KEY" not in _started(dev.proc.pid, "--log-level", "warn")  # Temporal's
        await _add_toolbox_and_see_it_used(dev.api_url, call_log)

        # A second orch dev on the same state directory is refused, naming the first.
        other = {name: str(free_port()) for name in ("api", "temporal", "ui", "model")}
        code, out, err = await run_orch(
            "dev", "--state-dir", str(dev.state_dir), "--api-port", other["api"], "--temporal-port",
            other["temporal"], "--ui-port", other["ui"], "--model-port", other["model"],
        )  # fmt: skip
        assert code == 1 and "starting" not in out, out + err
        assert f"is in use by another orch dev (pid {dev.proc.pid}, API {dev.api_url})" in err, err

        code, out, err = await run_orch("run", "what time is it in Tokyo", "--api-url", dev.api_url)
        assert code == 0, out + err
        # Steps numbered as the run's status and the Temporal UI count them (LLM call 1, its tool...).
        assert "step 1: llm demo running" in out and "step 1: tool time.get_current_time completed" in out, out
        assert "step 2: llm demo running" in out and "completed (final_answer): It is" in out

        # Interactive: the y/n question answered on stdin; a bare Enter and a typo decide nothing.
        code, out, err = await run_orch(
            "run", "convert 9:00 UTC to Paris", "--api-url", dev.api_url, stdin=b"\nyse\ny checked the zones\n"
        )
        assert code == 0, out + err
        assert "waiting for approval: time.convert_time" in out and "approve? [y/n" in out
        assert out.count("answer y (approve) or n (deny)") == 2, out
        assert "09:00 in UTC is" in out and "Europe/Paris" in out
        code, listed, _ = await run_orch("list", "--json", "--api-url", dev.api_url)
        interactive = await _status(dev.api_url, json.loads(listed)["data"][0]["id"])
        assert next(s for s in interactive["steps"] if s["kind"] == "tool")["reason"] == "checked the zones"

        # Scripted: start, see the pending call, approve it with its own command.
        code, run_id, err = await run_orch("run", "--no-wait", "convert 9:00 UTC to Paris", "--api-url", dev.api_url)
        run_id = run_id.strip()
        assert code == 0 and run_id.startswith("orch-"), err
        waiting = await _wait_status(dev.api_url, run_id, lambda r: r["pending_approvals"])
        call_id = waiting["pending_approvals"][0]["tool_call_id"]
        code, out, err = await run_orch("status", run_id, "--api-url", dev.api_url)
        assert f"orch approve {run_id} {call_id}" in out
        assert [line.split()[:3] for line in out.splitlines() if line.startswith("1 ")] == [
            ["1", "llm", "demo"],
            ["1", "tool", "time.convert_time"],
        ], out
        code, out, err = await run_orch("list", "--api-url", dev.api_url)
        assert f"{run_id}  waiting_for_approval" in out and f"time.convert_time ({call_id})" in out, out
        code, out, err = await run_orch("approve", run_id, call_id, "--reason", "fine", "--api-url", dev.api_url)
        assert code == 0 and f"approved {call_id}; run is running" in out, out + err
        final = await _wait_status(dev.api_url, run_id, lambda r: r["status"] == "completed")
        tool_step = next(s for s in final["steps"] if s["kind"] == "tool")
        assert tool_step["approver"].startswith("cli") and tool_step["reason"] == "fine"
        code, out, err = await run_orch("list", "--status", "completed", "--api-url", dev.api_url)
        assert run_id in out

        code, doomed, err = await run_orch("run", "--no-wait", "convert 9:00 UTC to Berlin", "--api-url", dev.api_url)
        await _wait_status(dev.api_url, doomed.strip(), lambda r: r["pending_approvals"])
        code, out, err = await run_orch("cancel", doomed.strip(), "--api-url", dev.api_url)
        assert code == 0 and "cancel requested" in out, err
        await _wait_status(dev.api_url, doomed.strip(), lambda r: r["status"] == "cancelled")
    finally:
        code, children = await dev.interrupt()
    assert code == 0
    assert len(children) >= 4, "temporal, demo model, worker and API were running"
    await eventually(lambda: not [pid for pid in children if _alive(pid)], "no process left behind by Ctrl-C")

    # Runs survive a restart: the dev server keeps them in the SQLite file under the state dir.
    # So do the servers added over the API, in the store, and the key that opens their secrets.
    again = OrchDev(tmp_path / "state")
    await again.start()
    try:
        assert (await _status(again.api_url, run_id))["status"] == "completed"
        assert key_file.read_text() == secrets_key
        async with httpx.AsyncClient(base_url=again.api_url, timeout=WAIT_SECONDS) as http:
            listed = (await http.get("/v1/mcp/servers")).json()["servers"]
            assert [(s["name"], s["source"]) for s in listed] == [("box", "api"), ("time", "config")]
            # Listed only if the worker opened the server's sealed env with the kept key.
            tools = await eventually(lambda: _tools_of(http, "box"), "the stored server is listed", interval=0.3)
            assert "echo" in tools
            await eventually(lambda: _health(http, "box"), "the worker checked the stored server", interval=0.2)
            assert await _health(http, "box") == "connected"
    finally:
        code, _ = await again.interrupt()
    assert code == 0


async def test_busy_ports_are_named_all_at_once(tmp_path: Path) -> None:
    with socket.socket() as api, socket.socket() as ui:
        for busy in (api, ui):
            busy.bind(("127.0.0.1", 0))
            busy.listen()
        ports = [str(busy.getsockname()[1]) for busy in (api, ui)]
        code, out, err = await run_orch(
            "dev", "--state-dir", str(tmp_path), "--api-port", ports[0], "--ui-port", ports[1], "--temporal-port",
            str(free_port()), "--model-port", str(free_port()),
        )  # fmt: skip
    assert code == 1
    assert err.strip() == (
        f"orch: ports {ports[0]} (API), {ports[1]} (Temporal UI) already in use: stop what uses them or choose "
        "other ports (see orch dev --help)"
    )
    assert "Traceback" not in out + err


async def test_client_commands_explain_an_unreachable_api() -> None:
    code, out, err = await run_orch("list", "--api-url", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach the API" in err and "orch dev" in err and "Traceback" not in err
    assert sys.executable
