"""Traces, with OpenTelemetry: off unless the standard OTEL_* variables ask for them
(`OTEL_TRACES_EXPORTER=otlp`, or an OTLP endpoint in `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` turns them off). Spans go out
over OTLP/HTTP (protobuf), batched; the exporter reads its own OTEL_EXPORTER_OTLP_* settings.

One trace per run: the API's request span (FastAPI's instrumentation), the workflow start and
the workflow (Temporal's `OpenTelemetryPlugin` carries the context in the workflow's headers,
across the process boundary), each tool call the run makes (`orch.tool_call`, with the decision)
and each activity, and the outbound HTTP calls (httpx's instrumentation).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.contrib.opentelemetry import create_tracer_provider

_enabled = False


def requested(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER")
    if exporter is not None:
        return exporter.strip().lower() not in ("", "none")
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(service_name: str) -> bool:
    """Set up tracing for this process when requested (`OTEL_SERVICE_NAME` overrides
    `service_name`); True when it is on. Call it before the first Temporal client."""
    global _enabled
    if not requested():
        return False
    provider = create_tracer_provider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    _enabled = True
    return True


def enabled() -> bool:
    return _enabled
