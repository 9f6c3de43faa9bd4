"""How the worker and the API log: a line of text per record, or with `ORCH_LOG_FORMAT=json`
one JSON object per line (python-json-logger) with `time`, `level`, `logger`, `message`, and
for a record about a run its `run_id` (the orchestration id), and with tracing on the
`trace_id` and `span_id` it was made in.

Temporal's workflow and activity loggers put the run's workflow id on their records
(`temporal_workflow`, `temporal_activity`); the API's access log names it in the request path.
Nothing here logs a setting: secrets reach the logs only if code puts them in a message, which
the tests look for (`tests/worker/test_logs.py`).
"""

from __future__ import annotations

import logging
import re
from typing import Literal

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity, workflow

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_RUN_PATH = re.compile(r"^/v1/orchestrations/([^/?]+)")


class RunIds(logging.Filter):
    """Sets `run_id` on records about a run, and `trace_id` and `span_id` on records made
    inside a span (with tracing on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id, record.span_id = format(span.trace_id, "032x"), format(span.span_id, "016x")
        for key in ("temporal_workflow", "temporal_activity"):
            info = getattr(record, key, None)
            if isinstance(info, dict) and info.get("workflow_id"):
                record.run_id = info["workflow_id"]
                return True
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) >= 3:
            found = _RUN_PATH.match(str(record.args[2]))
            if found:
                record.run_id = found.group(1)
        return True


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """Every record of the process to stderr in `log_format` (the SDK core's too, once
    `worker.telemetry.configure_runtime` forwards them here)."""
    handler = logging.StreamHandler()
    handler.addFilter(RunIds())
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
        # The run's details are fields of the record, not text appended to its message.
        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request at INFO (each LLM call, webhook and MCP HTTP request): noise at
    # the rate a busy worker makes them, and CPU; failures reach the logs through the activities.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
