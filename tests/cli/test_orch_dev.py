"""`orch dev` as a newcomer runs it, driven through the `orch` commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.orch_cli import ORCH, run_orch
from tests.scripted_llm import free_port
from tests.waiting import WAIT_SECONDS, eventually


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
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "ORCH_MCP_CONFIG", "ORCH_API_PORT")}
        # A user whose shell points at another cluster: orch dev's stack still uses its own server.
        env |= {"TEMPORAL_ADDRESS": "elsewhere.example:7233", "TEMPORAL_API_KEY": "k", "TEMPORAL_PROFILE": "absent"}
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


async def test_orch_dev_demo_flow_through_the_cli_then_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    dev = OrchDev(tmp_path / "state")
    await dev.start()
    banner = "".join(dev.lines)
    assert f"{dev.api_url}/docs" in banner and f"http://127.0.0.1:{dev.ports['ui']}" in banner
    # The banner's commands reach this API (its port is not the default).
    assert f'orch run --api-url {dev.api_url} "convert 9:00 UTC to Paris"' in banner
    assert "demo model (rule-based, not an LLM)" in banner
    try:
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
    again = OrchDev(tmp_path / "state")
    await again.start()
    try:
        assert (await _status(again.api_url, run_id))["status"] == "completed"
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
