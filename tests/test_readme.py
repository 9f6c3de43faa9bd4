"""The README's commands exist and agree with the code (the flows themselves are run by
tests/cli/test_orch_dev.py and tests/api/)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from api.app import create_app
from api.cli.main import _parser
from worker.connection import ENVIRONMENT_VARIABLES
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMMAND_LINES = [
    line.strip()
    for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
    for line in block.replace("\\\n", " ").splitlines()
    if line.strip() and not line.strip().startswith("#")
] + re.findall(r"`((?:orch|python|curl) [^`]+)`", README.replace("\n", " "))


def _commands(program: str) -> list[list[str]]:
    found = []
    for line in COMMAND_LINES:
        for part in re.split(r"&&|&(?!&)|\|", line):
            words = shlex.split(part.split(" #")[0], posix=True)
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]  # leading VAR=value assignments
            if words and words[0] == program:
                found.append(words)
    return found


def test_readme_has_orch_commands_and_each_one_parses() -> None:
    commands = _commands("orch")
    assert {c[1] for c in commands} >= {"dev", "run", "approve", "deny", "status", "list"}
    for words in commands:
        if "--help" in words:
            with pytest.raises(SystemExit) as shown:
                _parser().parse_args(words[1:])
            assert shown.value.code == 0
        else:
            _parser().parse_args(words[1:])


def test_python_modules_in_readme_exist() -> None:
    modules = {words[2] for words in _commands("python") if words[1] == "-m"}
    assert {"worker", "api"} <= modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module


def test_curl_paths_are_api_endpoints() -> None:
    spec_paths = create_app(Settings()).openapi()["paths"]
    patterns = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$") for path in spec_paths]
    urls = [word for words in _commands("curl") for word in words if "localhost:8000" in word]
    assert urls
    for url in urls:
        path = url.split("localhost:8000", 1)[1]
        assert any(p.match(path) for p in patterns), path


def test_every_configuration_variable_in_readme_is_read_by_settings() -> None:
    """The settings tables: ORCH_* and the rest read by Settings, TEMPORAL_* by the SDK's
    environment configuration (each `_PATH` with its `_DATA` form beside it)."""
    names: set[str] = set(ENVIRONMENT_VARIABLES)
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names |= {alias} if isinstance(alias, str) else {str(c) for c in getattr(alias, "choices", [])}
    documented = set(re.findall(r"^\| `([A-Z_]+)`", README, re.MULTILINE))
    documented |= {n for row in re.findall(r"^\| `([A-Z_]+)`, `([A-Z_]+)`", README, re.MULTILINE) for n in row}
    assert documented, "the configuration table is there"
    assert documented <= names, documented - names
    undocumented = {name for name in names - documented if not name.endswith("_DATA")}
    assert not undocumented, f"undocumented settings: {undocumented}"


@pytest.mark.parametrize("command", ["pytest"])
def test_ci_runs_the_readme_test_command(command: str) -> None:
    test_section = README.split("## Test\n", 1)[1].split("##", 1)[0]
    assert f"```bash\n{command}\n```" in test_section
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in [line.strip() for line in ci]
