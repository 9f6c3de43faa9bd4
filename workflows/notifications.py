"""A run's webhooks (approval requested, completed, failed): delivered in the background by an
activity, so the run never waits for a slow receiver, and drained before the run ends or
continues as new."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import options
    from workflows.activity_io import WebhookEvent, WebhookEventType
    from workflows.contract import DELIVER_WEBHOOK_ACTIVITY
    from workflows.run_record import RunRecord


class Notifications:
    """The run's webhook deliveries in flight; called from workflow code only."""

    def __init__(self, record: RunRecord) -> None:
        self._record = record
        self._pending: list[asyncio.Task[None]] = []

    def send(self, event_type: WebhookEventType, data: Callable[[], dict[str, Any]]) -> None:
        """Deliver a webhook in the background. Skipped, its `data` never made, when neither the
        run nor the worker has a webhook URL."""
        request, state = self._record.request, self._record.state
        if request.webhook_url is None and state is not None and not state.worker_webhook:
            return
        event = WebhookEvent(
            url=request.webhook_url,
            event_id=f"evt_{workflow.uuid4().hex}",
            event_type=event_type,
            timestamp=workflow.now(),
            data=data(),
        )
        delivery = workflow.execute_activity(
            options.activity_name(DELIVER_WEBHOOK_ACTIVITY),
            event,
            summary=f"webhook {event_type}",
            **options.webhook_options(),
        )
        self._pending.append(asyncio.ensure_future(delivery))

    async def drain(self) -> None:
        """Wait for the deliveries; one that gave up is logged, never fails the run."""
        tasks, self._pending = self._pending, []
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                workflow.logger.warning("webhook delivery gave up: %s", result)
