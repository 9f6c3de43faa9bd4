"""A test MCP server whose tools talk back to the client mid-call: elicitation, sampling, roots
and progress, written with the SDK's MCPServer.

Run over stdio: `python -m tests.mcp_servers.interactive`; over streamable HTTP on 127.0.0.1:
`python -m tests.mcp_servers.interactive --http PORT`. Add `--legacy` to speak only the
handshake-era protocol (2025-11-25 and older), so a client ends up on the legacy path.

How the questions reach the client depends on the negotiated protocol version:

- 2026-07-28 (what `Client(...)` negotiates by default): the tools whose parameters are
  `Annotated[..., Resolve(fn)]` answer `tools/call` with an `InputRequiredResult` (SEP-2322);
  the client answers `inputRequests` and retries the call with `inputResponses` and the echoed
  `requestState`, once per round. `book_trip` takes two rounds: its second question embeds the
  first answer. The 2026 wire has no server-to-client requests, so `legacy_ask` (the in-session
  `ctx.elicit(...)`) fails there with JSON-RPC error -32600 (the SDK's `NoBackChannelError`).
- 2025-11-25 (a client with `mode="legacy"`, or any client of a server started with
  `--legacy`): every question, the resolvers' ones included, is a standalone
  `elicitation/create` (`sampling/createMessage`, `roots/list`) request sent to the client
  mid-call, answered by its callbacks.

`--legacy` makes the server refuse the 2026 wire: over stdio it serves only the initialize
handshake (a `server/discover` probe gets -32601), over HTTP it answers every 2026-07-28
request with -32022 naming the handshake-era versions. Either way `Client(...)` in its default
mode "auto" falls back to `initialize` and negotiates 2025-11-25.

Every tool call that runs its body to the end is appended as one JSON line
{"tool", "arguments", "pid", "at"} to the file named by `INTERACTIVE_CALL_LOG` (when set); a
multi-round call is logged once, by the round that runs the tool body.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Annotated, Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import (
    AcceptedElicitation,
    CancelledElicitation,
    Elicit,
    ElicitationResult,
    ListRoots,
    Resolve,
    Sample,
)
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    UNSUPPORTED_PROTOCOL_VERSION,
    CreateMessageResult,
    ListRootsResult,
    SamplingMessage,
    TextContent,
    UnsupportedProtocolVersionErrorData,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

server = MCPServer("interactive")


def _log_call(tool: str, arguments: dict[str, Any]) -> None:
    path = os.environ.get("INTERACTIVE_CALL_LOG")
    if not path:
        return
    line = json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid(), "at": time.time()})
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


# --- book_trip: two rounds, the second question depends on the first answer ---------------


class TravelDate(BaseModel):
    date: str


class SeatChoice(BaseModel):
    seats: int
    window: bool = False


def ask_travel_date(destination: str) -> Elicit[TravelDate]:
    """Round 1."""
    return Elicit(f"When do you travel to {destination}?", TravelDate)


def ask_seats(when: Annotated[ElicitationResult[TravelDate], Resolve(ask_travel_date)]) -> Elicit[SeatChoice] | None:
    """Round 2, asked only once the date is known (its message names the date); nothing is
    asked when round 1 was declined or cancelled (the tool body then answers from `when`)."""
    if not isinstance(when, AcceptedElicitation):
        return None
    return Elicit(f"How many seats on {when.data.date}?", SeatChoice)


def _refused(outcome: ElicitationResult[Any]) -> str | None:
    if isinstance(outcome, CancelledElicitation):
        return "cancelled"
    if not isinstance(outcome, AcceptedElicitation):
        return "declined"
    return None


@server.tool()
def book_trip(
    destination: str,
    when: Annotated[ElicitationResult[TravelDate], Resolve(ask_travel_date)],
    seats: Annotated[ElicitationResult[SeatChoice], Resolve(ask_seats)],
) -> str:
    """Book a trip: asks for the travel date, then for the seats on that date."""
    refused = _refused(when) or _refused(seats)
    _log_call("book_trip", {"destination": destination})
    if refused is not None:
        return f"booking {refused}"
    assert isinstance(when, AcceptedElicitation) and isinstance(seats, AcceptedElicitation)
    choice: SeatChoice = seats.data
    window = ", window" if choice.window else ""
    return f"booked {destination} on {when.data.date}: {choice.seats} seat(s){window}"


# --- ask_name: one round ------------------------------------------------------------------


class PersonName(BaseModel):
    name: str


def ask_for_name() -> Elicit[PersonName]:
    return Elicit("What is your name?", PersonName)


@server.tool()
def ask_name(name: Annotated[ElicitationResult[PersonName], Resolve(ask_for_name)]) -> str:
    """Ask the user for their name."""
    _log_call("ask_name", {})
    if isinstance(name, AcceptedElicitation):
        return f"hello {name.data.name}"
    return f"no name given ({name.action})"


# --- summarize: one sampling request ------------------------------------------------------


def sample_summary(text: str) -> Sample:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=f"Summarize: {text}"))
    return Sample(messages=[message], max_tokens=100)


@server.tool()
def summarize(text: str, summary: Annotated[CreateMessageResult, Resolve(sample_summary)]) -> str:
    """Summarize `text` with the client's LLM (sampling)."""
    _log_call("summarize", {"text": text})
    content = summary.content
    sampled = content.text if isinstance(content, TextContent) else f"<{content.type}>"
    return f"summary: {sampled}"


# --- list_roots: one roots/list request ---------------------------------------------------


def fetch_roots() -> ListRoots:
    return ListRoots()


@server.tool()
def list_roots(roots: Annotated[ListRootsResult, Resolve(fetch_roots)]) -> str:
    """The client's roots, one URI a line."""
    _log_call("list_roots", {})
    return "\n".join(str(root.uri) for root in roots.roots) or "no roots"


# --- legacy_ask: the in-session elicitation/create request --------------------------------


class LegacyAnswer(BaseModel):
    answer: str


@server.tool()
async def legacy_ask(ctx: Context) -> str:
    """Ask with the legacy in-session `ctx.elicit(...)`: a standalone `elicitation/create`
    request to the client mid-call. Works on handshake-era connections only; on 2026-07-28 the
    SDK raises NoBackChannelError, which reaches the client as JSON-RPC error -32600."""
    outcome = await ctx.elicit("What should the legacy path answer?", LegacyAnswer)
    _log_call("legacy_ask", {})
    if isinstance(outcome, AcceptedElicitation):
        return f"legacy answer: accept {outcome.data.model_dump_json()}"
    return f"legacy answer: {outcome.action}"


# --- count_slowly: progress notifications -------------------------------------------------


@server.tool()
async def count_slowly(steps: int, ctx: Context) -> str:
    """Send `steps` progress notifications, about 0.2 s apart."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, message=f"step {i} of {steps}")
        if i < steps:
            await anyio.sleep(0.2)
    _log_call("count_slowly", {"steps": steps})
    return f"counted to {steps}"


# --- --legacy ------------------------------------------------------------------------------


async def refuse_modern_protocol(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware of `--legacy` over HTTP: a 2026-07-28 request (there: each one a
    stateless POST, `server/discover` first) is answered with -32022 naming only the
    handshake-era versions, which makes a client in mode "auto" fall back to `initialize`."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        data = UnsupportedProtocolVersionErrorData(
            supported=list(HANDSHAKE_PROTOCOL_VERSIONS), requested=ctx.protocol_version
        )
        raise MCPError(
            code=UNSUPPORTED_PROTOCOL_VERSION,
            message="this server speaks only the handshake-era protocol (started with --legacy)",
            data=data.model_dump(mode="json", by_alias=True),
        )
    return await call_next(ctx)


async def run_stdio_legacy() -> None:
    """Serve stdio in handshake-only loop mode (`Server.run` serves both eras; the first request
    decides, so a `server/discover` probe would lock the connection to 2026-07-28). In this
    mode `server/discover` is an unknown method (-32601), and the client falls back."""
    lowlevel = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream), lowlevel.lifespan(lowlevel) as state:
        await serve_loop(
            lowlevel,
            read_stream,
            write_stream,
            lifespan_state=state,
            init_options=lowlevel.create_initialization_options(),
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on 127.0.0.1:PORT")
    parser.add_argument(
        "--legacy", action="store_true", help="speak only the handshake-era protocol (2025-11-25 and older)"
    )
    args = parser.parse_args()
    if args.legacy:
        server.middleware.append(refuse_modern_protocol)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    elif args.legacy:
        anyio.run(run_stdio_legacy)
    else:
        server.run()


if __name__ == "__main__":
    main()
