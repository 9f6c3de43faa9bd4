"""The SDK runtime of every process (worker and API): the core's log lines forwarded to Python
logging (`worker.logs`), and with ORCH_METRICS_PORT a Prometheus endpoint, `GET /metrics`,
served by the SDK's core: its own metrics (`temporal_*`) and the service's (`orch_*`,
`workflows/metrics.py`).
"""

from __future__ import annotations

import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from workflows.metrics import HISTOGRAM_BUCKETS


def configure_runtime(metrics_port: int | None, metrics_host: str = "0.0.0.0") -> Runtime:
    """Make the process's default SDK runtime; call it before the first Temporal client."""
    core_logs = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    metrics = None
    if metrics_port is not None:
        metrics = PrometheusConfig(
            bind_address=f"{metrics_host}:{metrics_port}", histogram_bucket_overrides=dict(HISTOGRAM_BUCKETS)
        )
    runtime = Runtime(telemetry=TelemetryConfig(logging=core_logs, metrics=metrics))
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime
