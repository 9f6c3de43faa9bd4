"""The events hub's ordering rules, with the `events` query replaced by an in-memory log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from api.events import RunEventsHub
from tests.waiting import WAIT_SECONDS, eventually
from workflows.messages import EventsPage, RunEvent, RunEventType, RunStatus


class EventLog:
    """A run's events; `fetch` answers like the `events` query, and may be held at a gate."""

    def __init__(self, count: int) -> None:
        self.events: list[RunEvent] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.add(count)

    def add(self, count: int, final: bool = False) -> None:
        for _ in range(count):
            last = final and _ == count - 1
            kind = RunEventType.COMPLETED if last else RunEventType.STATUS
            self.events.append(RunEvent(id=len(self.events) + 1, type=kind, at=datetime.now(UTC)))

    async def fetch(self, run_id: str, after: int) -> EventsPage:
        if after in self.gates:
            await self.gates[after].wait()
        done = any(event.type == RunEventType.COMPLETED for event in self.events)
        return EventsPage(
            events=[event for event in self.events if event.id > after],
            first_id=1,
            last_id=len(self.events),
            status=RunStatus.COMPLETED if done else RunStatus.RUNNING,
        )


async def _collect(hub: RunEventsHub, after: int, into: list[int]) -> list[int]:
    async with asyncio.timeout(WAIT_SECONDS):
        async for event in hub.follow("run", after):
            into.append(event.id)
    return into


async def test_a_reader_that_got_ahead_of_a_poisoned_watcher_is_not_sent_events_again() -> None:
    """A watcher made by a resume point far past the run's events: its first poll lowers its
    position to the run's newest event (5) while another subscriber's direct read of the
    backlog, started before that poll answered and answered after it, already reached event 8."""
    far = 10**17
    log = EventLog(5)
    first_poll, backlog_read, second_poll = (log.gates.setdefault(after, asyncio.Event()) for after in (far, 0, 5))
    hub = RunEventsHub(log.fetch, poll_seconds=0.01)
    read: list[int] = []
    poisoned = asyncio.create_task(_collect(hub, far, []))
    await eventually(lambda: hub.fetches == 1, "the watcher's first poll")
    reader = asyncio.create_task(_collect(hub, 0, read))
    await eventually(lambda: hub.fetches == 2, "the reader's backlog read")
    first_poll.set()  # the watcher learns the run's newest event is 5, and polls after it
    await eventually(lambda: hub.fetches == 3, "the watcher's second poll")
    log.add(3)  # events 6-8 happen before the reader's backlog read is answered
    backlog_read.set()
    await eventually(lambda: len(read) == 8, "the reader read the backlog")
    log.add(1, final=True)
    second_poll.set()
    assert await reader == list(range(1, 10)), "every event once, in order"
    assert (await poisoned)[-1] == 9, "the poisoned subscriber resumed from the newest event and ended"


async def test_a_reader_ahead_of_a_watcher_that_has_not_polled_yet_waits_instead_of_skipping() -> None:
    """A watcher made by a resume point far past the run's events does not know where the run
    is until its first poll answers. A reader from the start reads the backlog directly
    meanwhile; when a second direct read finds nothing newer, the reader must wait for that
    poll, not take the watcher's far resume point for the end of a gap and skip to it (found by
    a loaded CI run: the stream stopped at `tool_started` and ended without `completed`)."""
    far = 10**17
    log = EventLog(3)
    first_poll = log.gates.setdefault(far, asyncio.Event())
    hub = RunEventsHub(log.fetch, poll_seconds=0.01)
    read: list[int] = []
    poisoned = asyncio.create_task(_collect(hub, far, []))
    await eventually(lambda: hub.fetches == 1, "the watcher's first poll")
    reader = asyncio.create_task(_collect(hub, 0, read))
    await eventually(lambda: read == [1, 2, 3] and hub.fetches == 3, "the backlog, then a read with nothing newer")
    log.add(2)
    first_poll.set()
    await eventually(lambda: len(read) == 5, "the reader read what happened since")
    log.add(1, final=True)
    assert await reader == [1, 2, 3, 4, 5, 6], "every event once, in order, to the end"
    assert await poisoned == [6], "the poisoned subscriber resumed from the newest event and ended"
