"""`python -m api`: serve the HTTP API on ORCH_API_HOST:ORCH_API_PORT."""

from __future__ import annotations

import uvicorn

from worker.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run("api.app:app", host=settings.api_host, port=settings.api_port, log_level="info")


if __name__ == "__main__":
    main()
