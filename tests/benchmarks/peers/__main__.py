"""`python -m tests.benchmarks.peers [NAME ...]`: measure some peers alone on a fresh stack and
print their figures as JSON lines (the full comparison is case p of `python -m tests.benchmarks`)."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.benchmarks.cases import cpu_seconds
from tests.benchmarks.peers import PEERS, load, measure, summary
from tests.benchmarks.stack import stack


async def main(names: list[str]) -> None:
    async with stack() as bench:
        for name in names:
            peer = load(name)
            figures = await measure(peer, bench.temporal_address, bench.llm.base_url, bench.peer_model, cpu_seconds)
            print(json.dumps(summary(figures)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or list(PEERS)))
