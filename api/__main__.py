"""`python -m api`: serve the HTTP API on ORCH_API_HOST:ORCH_API_PORT."""

from __future__ import annotations

import sys

import uvicorn

from api.api_keys import APIKeysError, load_api_keys
from api.loopback import is_loopback
from worker.logs import configure_logging
from worker.settings import Settings
from worker.telemetry import configure_runtime
from worker.tracing import configure_tracing


def main() -> int:
    settings = Settings()
    try:
        keys = load_api_keys(settings.api_keys)
    except APIKeysError as err:
        sys.stderr.write(f"api: {err}\n")
        return 2
    if keys is None and not is_loopback(settings.api_host):
        sys.stderr.write(
            f"api: refusing to listen on {settings.api_host}: no API keys are configured. Set ORCH_API_KEYS "
            "(create keys with `orch keys new`) or listen on 127.0.0.1.\n"
        )
        return 2
    configure_logging(settings.log_format)
    configure_runtime(settings.metrics_port, settings.metrics_host)
    configure_tracing("orch-api")
    # log_config=None: uvicorn's loggers go through the handler configure_logging set up.
    uvicorn.run("api.app:app", host=settings.api_host, port=settings.api_port, log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
