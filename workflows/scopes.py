"""API keys' MCP scopes: which servers and tools a key's runs may use. The API refuses a run
naming a server outside its caller's scope; the run's first activity offers the model only
the tools inside it."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence


def scope_allows(scope: Sequence[str] | None, server: str, tool: str | None = None) -> bool:
    """Whether an API key's MCP scope admits `server` (any of its tools when `tool` is None)
    or `server`'s `tool`. Entries are `server` (all its tools) or `server.tool`, with globs;
    None means no restriction."""
    if scope is None:
        return True
    for entry in scope:
        if fnmatch.fnmatchcase(server, entry):
            return True
        # Server and tool names may hold dots themselves: try every split.
        for at in (index for index, char in enumerate(entry) if char == "."):
            if fnmatch.fnmatchcase(server, entry[:at]) and (tool is None or fnmatch.fnmatchcase(tool, entry[at + 1 :])):
                return True
    return False
