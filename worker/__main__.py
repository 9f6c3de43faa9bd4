"""`python -m worker`: run an orchestration worker with the settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from worker.connection import TemporalConfigError, TemporalConnectError, TemporalConnection
from worker.logs import configure_logging
from worker.runner import WorkerConfigError, checked_config, run_worker
from worker.settings import Settings
from worker.telemetry import configure_runtime
from worker.tracing import configure_tracing


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_format)
    configure_runtime(settings.metrics_port, settings.metrics_host)
    configure_tracing("orch-worker")
    try:
        mcp_config = checked_config(settings)
        temporal = TemporalConnection.from_environment()
    except (WorkerConfigError, TemporalConfigError) as err:
        sys.stderr.write(f"worker: {err}\n")
        return 2
    try:
        asyncio.run(run_worker(settings, mcp_config, temporal))
    except WorkerConfigError as err:
        sys.stderr.write(f"worker: {err}\n")
        return 2
    except TemporalConnectError as err:
        sys.stderr.write(f"worker: {err}\n")
        # Exit at once: after a refused connection the SDK core's threads have crashed the
        # interpreter's teardown (SIGSEGV instead of exit status 1, seen once under load).
        sys.stderr.flush()
        logging.shutdown()
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
