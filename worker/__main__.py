"""`python -m worker`: run an orchestration worker with the settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import sys

from worker.runner import WorkerConfigError, checked_config, run_worker
from worker.settings import Settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        mcp_config = checked_config(settings)
    except WorkerConfigError as err:
        sys.stderr.write(f"worker: {err}\n")
        return 2
    try:
        asyncio.run(run_worker(settings, mcp_config))
    except RuntimeError as err:
        # The SDK raises RuntimeError when the server cannot be reached at connect time.
        sys.stderr.write(f"worker: cannot connect to Temporal at {settings.temporal_address}: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
