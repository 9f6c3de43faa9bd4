"""What the `orch` commands that call the API share: their `--api-url`, `--api-key` and `--json`
flags, a JSON body read from a file or stdin, and how they print."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from api.cli.client import CLIError

DEFAULT_API_URL = "http://127.0.0.1:8000"


def say(text: str) -> None:
    """The CLI's output (its product, not logging)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def show(args: argparse.Namespace, text: str, answer: Any) -> int:
    """`text`, or the API's `answer` with --json."""
    say(json.dumps(answer, indent=2) if args.json else text)
    return 0


def add_client_command(
    commands: Any, name: str, help_text: str, *, json_output: bool = True
) -> argparse.ArgumentParser:
    """A command that calls the API. `json_output`: it takes `--json` to print JSON (commands
    that read a JSON body take `--json FILE` instead)."""
    sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    sub.add_argument("--api-url", default=os.environ.get("ORCH_API_URL", DEFAULT_API_URL))
    sub.add_argument("--api-key", default=os.environ.get("ORCH_API_KEY"), help="default: env ORCH_API_KEY")
    if json_output:
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
    else:
        sub.set_defaults(json=False)
    return sub


def add_body_command(commands: Any, name: str, help_text: str, json_help: str) -> argparse.ArgumentParser:
    """A command on the resource `name` whose body is read from `--json FILE` (`-`: stdin)."""
    sub = add_client_command(commands, name, help_text, json_output=False)
    sub.add_argument("name")
    sub.add_argument("--json", dest="body_file", metavar="FILE|-", help=json_help)
    return sub


def read_json_object(source: str | None) -> dict[str, Any]:
    """The JSON object in file `source` (`-`: stdin); empty without one."""
    if source is None:
        return {}
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as err:
        raise CLIError(f"cannot read {where}: {err.strerror}") from None
    try:
        body = json.loads(text)
    except ValueError as err:
        raise CLIError(f"{where} is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise CLIError(f"{where} must hold a JSON object")
    return body
