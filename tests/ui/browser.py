"""Headless chromium driven over the DevTools protocol: open a page, wait until it shows a
text, save a screenshot. Chromium's own `--screenshot` shoots before a single-page app has
rendered, and waiting on network idle never ends on a page that long-polls (the Temporal UI
does), hence this small client (a WebSocket over asyncio streams, enough for DevTools)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.scripted_llm import free_port
from tests.waiting import eventually


class DevTools:
    """One page's DevTools connection: `call(method, **params)`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        await self._send(json.dumps({"id": self._next_id, "method": method, "params": params}).encode())
        while True:
            message = json.loads(await self._receive())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def _send(self, data: bytes) -> None:
        mask = os.urandom(4)
        size = len(data)
        header = bytes([0x81]) + (
            bytes([0x80 | size]) if size < 126
            else bytes([0x80 | 126]) + struct.pack(">H", size) if size < 65536
            else bytes([0x80 | 127]) + struct.pack(">Q", size)
        )  # fmt: skip
        self._writer.write(header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(data)))
        await self._writer.drain()

    async def _receive(self) -> bytes:
        message = b""
        while True:
            first, second = await self._reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack(">H", await self._reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack(">Q", await self._reader.readexactly(8))
            message += await self._reader.readexactly(size)
            if first & 0x80:  # the final fragment
                return message


@contextlib.asynccontextmanager
async def page(url: str, width: int = 1400, height: int = 1800) -> AsyncIterator[DevTools]:
    """Headless chromium showing `url`."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs chromium (Debian: apt-get install chromium)")
    port = free_port()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = await asyncio.create_subprocess_exec(
            browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--remote-debugging-port={port}", f"--user-data-dir={profile}", f"--window-size={width},{height}", url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                async def page_target() -> str | None:
                    with contextlib.suppress(httpx.HTTPError):
                        targets = (await http.get("/json/list")).json()
                        return next((t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"), None)
                    return None

                socket_url = await eventually(page_target, "chromium's DevTools endpoint")
            parts = urlsplit(socket_url)
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=64 * 1024 * 1024)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            try:
                yield DevTools(reader, writer)
            finally:
                writer.close()
        finally:
            process.kill()
            await process.wait()


async def wait_for_text(tools: DevTools, text: str) -> None:
    async def shown() -> bool:
        result = await tools.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''")
        return text in result["result"].get("value", "")

    await eventually(shown, f"the page to show {text!r}")


async def screenshot(tools: DevTools, out: Path) -> None:
    shot = await tools.call("Page.captureScreenshot", format="png")
    out.write_bytes(base64.b64decode(shot["data"]))


async def click(tools: DevTools, label: str) -> None:
    """Click the link, button or tab whose text starts with `label`, once the page has it."""
    candidates = "[...document.querySelectorAll('a, button, [role=tab]')]"
    find = f"{candidates}.find(e => e.innerText.trim().startsWith({json.dumps(label)}))"
    script = f"(() => {{ const found = {find}; if (found) found.click(); return !!found; }})()"

    async def clicked() -> bool:
        return bool((await tools.call("Runtime.evaluate", expression=script))["result"].get("value"))

    await eventually(clicked, f"a {label!r} to click")
