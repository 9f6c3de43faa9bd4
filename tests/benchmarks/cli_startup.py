"""`python -m tests.benchmarks.cli_startup`: how long `orch` commands take to start, as whole
processes, against the interpreter's own start-up measured in the same run.

    python -m tests.benchmarks.cli_startup             # 10 runs of each
    python -m tests.benchmarks.cli_startup --runs 30

`orch list` talks to a loopback HTTP server in this process that answers an empty page, so
the figure is the command's own start-up, import and one request (not the API's work).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _EmptyPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"data": [], "next_page_token": None}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _seconds(command: list[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - began)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.cli_startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()
    orch = shutil.which("orch", path=str(Path(sys.executable).parent))
    if orch is None:
        sys.exit("orch is not installed in this environment: pip install -e .")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api_url = f"http://127.0.0.1:{server.server_address[1]}"
    commands = {
        "python -c pass (interpreter start-up)": [sys.executable, "-c", "pass"],
        "orch --help": [orch, "--help"],
        "orch list": [orch, "list", "--api-url", api_url],
    }
    env_note = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {options.runs} runs each"
    print(f"| command | min | median | max | ratio to interpreter |   ({env_note})")
    print("|---|---:|---:|---:|---:|")
    floor = None
    for name, command in commands.items():
        samples = _seconds(command, options.runs)
        median = statistics.median(samples)
        floor = floor or median
        print(
            f"| `{name}` | {min(samples) * 1000:.0f} ms | {median * 1000:.0f} ms | {max(samples) * 1000:.0f} ms "
            f"| {median / floor:.1f}x |"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
