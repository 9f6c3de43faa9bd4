"""The `orch` command run as a person runs it, for tests: one process, its exit code and output."""

from __future__ import annotations

import asyncio
import os

from tests.conftest import BIN_DIR, REPO_ROOT
from tests.waiting import WAIT_SECONDS

ORCH = str(BIN_DIR / "orch")


async def run_orch(*args: str, stdin: bytes | None = None, **env: str) -> tuple[int, str, str]:
    """`orch *args` with `stdin` (and `env` added to the environment): exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        ORCH, *args, cwd=REPO_ROOT, env=dict(os.environ, **env), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), WAIT_SECONDS)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
