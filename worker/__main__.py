"""`python -m worker`: run an orchestration worker with the settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import sys

from worker.connection import TemporalConfigError, TemporalConnectError, TemporalConnection
from worker.runner import WorkerConfigError, checked_config, run_worker
from worker.settings import Settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        mcp_config = checked_config(settings)
        temporal = TemporalConnection.from_environment()
    except (WorkerConfigError, TemporalConfigError) as err:
        sys.stderr.write(f"worker: {err}\n")
        return 2
    try:
        asyncio.run(run_worker(settings, mcp_config, temporal))
    except TemporalConnectError as err:
        sys.stderr.write(f"worker: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
