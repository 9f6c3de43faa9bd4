"""Inbound approval webhooks this process has already handled: a replayed delivery (same
`webhook-id`) within the signature window answers with the run's status and decides nothing."""

from __future__ import annotations

import time


class SeenWebhooks:
    """`webhook-id`s handled within the window, forgotten after it."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def first_sight(self, webhook_id: str, window_seconds: float) -> bool:
        """False when this process already handled `webhook_id` within `window_seconds`."""
        now = time.monotonic()
        self._seen = {key: at for key, at in self._seen.items() if now - at < window_seconds}
        if webhook_id in self._seen:
            return False
        self._seen[webhook_id] = now
        return True
