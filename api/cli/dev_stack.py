"""The processes behind `orch dev`: the Temporal dev server's flags, the demo MCP config, and
`DevStack`, which starts each child in order (`start_stack`), logs it under the state
directory, names the first one to exit with the last line it wrote, and stops them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from api.cli.client import CLIError
from workflows.contract import SEARCH_ATTRIBUTES

DEV_SERVER_DYNAMIC_CONFIG = {
    # History reads new transfer tasks (e.g. "dispatch this workflow task") at most 20 times
    # a second per shard by default, and the dev server has one shard: every workflow task
    # then waited ~40 ms for its read, so each loop step cost ~50 ms (BENCHMARKS.md).
    "history.transferProcessorMaxPollRPS": "10000",
    # Eager start and eager activities (on by default today; stated so a change shows).
    "system.enableEagerWorkflowStart": "true",
    "system.enableActivityEagerExecution": "true",
}


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags: the dynamic config above and the search attributes."""
    flags = [f"--dynamic-config-value={key}={value}" for key, value in DEV_SERVER_DYNAMIC_CONFIG.items()]
    return flags + [f"--search-attribute={key.name}=Keyword" for key in SEARCH_ATTRIBUTES]


@dataclass
class DevOptions:
    state_dir: Path
    api_port: int = 8000
    temporal_port: int = 7233
    ui_port: int = 8233
    model_port: int = 8400


@dataclass
class DevStack:
    """The child processes of `orch dev`, stopped in reverse order of start."""

    options: DevOptions
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log_dir = self.options.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{name}.log", "ab")
        self.logs.append(log)
        # Unbuffered: the log keeps the order things happened in, so its last line is the last word.
        env = dict(env, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.children.append((name, process))

    def log_path(self, name: str) -> Path:
        return self.options.state_dir / "logs" / f"{name}.log"

    def exited(self) -> str | None:
        """Why a child stopped, if one did: its name, exit code and the last line it wrote (the
        worker and the API write their one-line reason last)."""
        for name, process in self.children:
            code = process.poll()
            if code is not None:
                return f"{name} exited with code {code}{_last_words(self.log_path(name))} (log: {self.log_path(name)})"
        return None

    def stop(self) -> None:
        for _, process in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


def start_stack(
    stack: DevStack, temporal: str, demo: bool, store_env: Mapping[str, str], say: Callable[[str], None]
) -> None:
    """Start Temporal and wait until it listens; then the demo model (when `demo`), the worker
    and the API (with the demo MCP config unless ORCH_MCP_CONFIG names one, and `store_env`, the
    store's settings); return once the API is ready. A child that exits before then is a
    CLIError naming it."""
    options = stack.options
    api_url = f"http://127.0.0.1:{options.api_port}"
    # The children reach this stack's own dev server: no TLS, key, profile or config file of the
    # user's environment applies (worker.connection reads TEMPORAL_* and the config file).
    env = {name: value for name, value in os.environ.items() if not name.startswith("TEMPORAL_")}
    env.update(
        TEMPORAL_ADDRESS=f"127.0.0.1:{options.temporal_port}",
        TEMPORAL_NAMESPACE="default",
        TEMPORAL_CONFIG_FILE=os.devnull,
        ORCH_TEMPORAL_UI_URL=f"http://127.0.0.1:{options.ui_port}",
        ORCH_API_HOST="127.0.0.1",
        ORCH_API_PORT=str(options.api_port),
    )
    say(f"orch dev: starting Temporal (state in {options.state_dir})")
    stack.spawn(
        "temporal",
        [
            temporal, "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(options.temporal_port), "--ui-port", str(options.ui_port),
            "--db-filename", str(options.state_dir / "temporal.db"),
            *dev_server_flags(), "--log-level", "warn",
        ],
        env,
    )  # fmt: skip
    _wait_for_port(stack, options.temporal_port, "Temporal")
    if demo:
        stack.spawn("demo-model", [sys.executable, "-m", "api.cli.demo_model", "--port", str(options.model_port)], env)
        env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{options.model_port}/v1", ORCH_DEFAULT_MODEL="demo")
    if not env.get("ORCH_MCP_CONFIG"):
        config = options.state_dir / "mcp.json"
        config.write_text(json.dumps(demo_mcp_config(), indent=2))
        env["ORCH_MCP_CONFIG"] = str(config)
    # The store's settings (its secrets key among them) go to the worker and the API only.
    env.update(store_env)
    if not env.get("ORCH_PUBLIC_URL"):
        env["ORCH_PUBLIC_URL"] = api_url  # where OAuth sends the browser back to
    say("orch dev: starting the worker and the API")
    stack.spawn("worker", [sys.executable, "-m", "worker"], env)
    stack.spawn("api", [sys.executable, "-m", "api"], env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        failed = stack.exited()
        if failed is not None:
            raise CLIError(failed)
        try:
            if httpx.get(f"{api_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise CLIError(f"the API did not become ready within 90 s; see {options.state_dir / 'logs'}")


def demo_mcp_config() -> dict[str, object]:
    """mcp-server-time with one auto-approved and one approval-gated tool."""
    return {
        "mcpServers": {
            "time": {
                "command": sys.executable,
                "args": ["-m", "mcp_server_time"],
                "tools_to_execute": ["get_current_time", "convert_time"],
                "tools_to_auto_execute": ["get_current_time"],
            }
        }
    }


def _wait_for_port(stack: DevStack, port: int, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        failed = stack.exited()
        if failed is not None:
            raise CLIError(failed)
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise CLIError(f"{name} did not listen on port {port} within {timeout:.0f} s")


def _last_words(log: Path) -> str:
    """The last line a child wrote (its reason, when it gives one), as ': line'."""
    try:
        with open(log, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            lines = file.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return f": {last[:300]}" if last else ""
