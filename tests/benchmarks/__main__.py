"""`python -m tests.benchmarks`: start a stack on loopback, run the baselines and every case in
one run, print a table (median, p99, ratio, target) and write BENCHMARKS.md.

    python -m tests.benchmarks                 # the full run (10,000 parked runs)
    python -m tests.benchmarks --quick         # smaller counts, about two minutes
    python -m tests.benchmarks --cases a,b     # some cases only (the baseline always runs)
    python -m tests.benchmarks --cases a,p     # this engine against its peers (pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

from tests.benchmarks import cases, peers
from tests.benchmarks.cases import Row
from tests.benchmarks.stack import DEFAULT_SERVER_FLAGS, DEV_SERVER_FLAGS, stack
from tests.conftest import REPO_ROOT, TEMPORAL_CLI


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--cases", default="a,b,c,d,e,f,g,p,r", help="comma-separated subset of a,b,c,d,e,f,g,p,r")
    parser.add_argument("--quick", action="store_true", help="smaller counts (for a look, not for the record)")
    parser.add_argument("--parked", type=int, help="runs parked in case d (default 10000; 1000 with --quick)")
    parser.add_argument(
        "--server-defaults", action="store_true", help="dev server without orch dev's dynamic config (for comparison)"
    )
    parser.add_argument("--output", default=str(REPO_ROOT / "BENCHMARKS.md"), help="report file ('-': none)")
    return parser.parse_args()


async def _run(options: argparse.Namespace) -> list[Row]:
    selected = set(options.cases.split(","))
    quick = options.quick
    rows: list[Row] = []
    async with stack(DEFAULT_SERVER_FLAGS if options.server_defaults else None) as bench:
        base = await cases.temporal_floor(bench, repeats=2 if quick else 4)
        rows += base
        _progress(rows)
        await bench.start_worker()
        if "a" in selected:
            rows += await cases.engine_overhead(bench, runs=10 if quick else 30, base=base)
            _progress(rows)
        if "g" in selected:
            rows += await cases.responsiveness(bench, reads=50 if quick else 200)
            _progress(rows)
        if "p" in selected:
            rows += await peers.compare(bench, runs=5 if quick else 10)
            _progress(rows)
        if "b" in selected:
            rows += await cases.mcp_calls(bench, calls=200 if quick else 1000, spawns=3 if quick else 10)
            _progress(rows)
        if "c" in selected:
            rows += await cases.throughput(bench, concurrent=200)
            _progress(rows)
        if selected & {"d", "e", "r"}:
            await bench.start_api()
        if "e" in selected:
            rows += await cases.approval_latency(bench, runs=20 if quick else 50)
            _progress(rows)
        if "r" in selected:
            rows += await cases.responses_api(bench, reads=20 if quick else 100, requests=10 if quick else 30)
            _progress(rows)
        if "f" in selected:
            rows += await cases.long_run(
                bench, steps=100 if quick else 500, output_bytes=8192, shorter=(10,) if quick else (10, 100)
            )
            _progress(rows)
        if "d" in selected:
            count = options.parked or (1000 if quick else 10_000)
            rows += await cases.parked_runs(bench, count=count, gets=200 if quick else 1000)
            _progress(rows)
    return rows


def _progress(rows: list[Row]) -> None:
    sys.stderr.write(f"  ... {rows[-1].case}: {rows[-1].what}\n")


def table(rows: list[Row]) -> str:
    lines = [
        "| case | what | median | p99 | ratio | target | met |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for row in rows:
        p99 = f"{row.p99:,.1f}" if row.p99 is not None else ""
        met = "" if row.ok is None else ("yes" if row.ok else "**no**")
        lines.append(
            f"| {row.case} | {row.what} | {row.median:,.1f} {row.unit} | {p99} | {row.ratio} | {row.target} | {met} |"
        )
    return "\n".join(lines)


def machine(flags: list[str]) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    temporal = subprocess.run([TEMPORAL_CLI, "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {int(memory) // 1024 // 1024} GiB, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, temporalio {version('temporalio')}, mcp {version('mcp')}, {temporal}; "
        f"dev server flags: {' '.join(flags)}"
    )


def main() -> int:
    options = _options()
    began = time.perf_counter()
    rows = asyncio.run(_run(options))
    command = " ".join(["python -m tests.benchmarks", *sys.argv[1:]])
    flags = DEFAULT_SERVER_FLAGS if options.server_defaults else DEV_SERVER_FLAGS
    report = (
        f"Command: `{command}` ({time.perf_counter() - began:.0f} s)\n\nMachine: {machine(flags)}\n\n{table(rows)}\n"
    )
    sys.stdout.write(report)
    if options.output != "-":
        write_results(Path(options.output), report)
    return 0


RESULTS_START = "<!-- results: written by python -m tests.benchmarks -->"
RESULTS_END = "<!-- end of results -->"


def write_results(path: Path, report: str) -> None:
    """Replace the results section of BENCHMARKS.md, keeping the hand-written experiments log."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{RESULTS_START}\n{RESULTS_END}\n"
    head, _, rest = text.partition(RESULTS_START)
    _, _, tail = rest.partition(RESULTS_END)
    path.write_text(f"{head}{RESULTS_START}\n{report}{RESULTS_END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
