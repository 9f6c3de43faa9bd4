"""The run's event log: what `GET /v1/orchestrations/{id}/events` streams.

Events are appended by the workflow as things happen, numbered from 1 across
continue-as-new, and read with the `events` query. Keeping them in the workflow (not
deriving them from snapshots in the API) makes the numbering exact: a client that
reconnects with `Last-Event-ID: n` gets every event after n, once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows.limits import MEMO_EVENTS_BUDGET_BYTES, fitted_events
from workflows.messages import EventsPage, RunEvent, RunEventType, RunStatus

EVENTS_CARRIED = 1000
"""Events carried into the next run at continue-as-new, and kept in the memo of a finished
run, at most (and at most MEMO_EVENTS_BUDGET_BYTES of them); older ones are dropped (a
client asking for them is told by `first_id`)."""


class EventLog:
    """Numbered events of one orchestration."""

    def __init__(self, events: list[RunEvent] | None = None, next_id: int = 1) -> None:
        self._events = list(events or [])
        self._next_id = next_id

    @property
    def next_id(self) -> int:
        return self._next_id

    def emit(
        self,
        type: RunEventType,
        at: datetime,
        *,
        step_index: int | None = None,
        tool_call_id: str | None = None,
        **data: Any,
    ) -> None:
        self._events.append(
            RunEvent(id=self._next_id, type=type, at=at, step_index=step_index, tool_call_id=tool_call_id, data=data)
        )
        self._next_id += 1

    def page(self, after: int, limit: int, status: RunStatus) -> EventsPage:
        """The events numbered above `after`, oldest first, at most `limit`."""
        first = self._events[0].id if self._events else self._next_id
        start = max(0, after + 1 - first)  # ids are contiguous
        newer = self._events[start : start + limit]
        return EventsPage(events=newer, first_id=first, last_id=self._next_id - 1, status=status)

    def carried(self) -> list[RunEvent]:
        """The newest events, for the state handed to the next run and the memo."""
        return fitted_events(self._events[-EVENTS_CARRIED:], MEMO_EVENTS_BUDGET_BYTES)
