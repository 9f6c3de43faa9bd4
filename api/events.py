"""Following a run's events for Server-Sent Events, with one poller per watched run.

The workflow keeps a numbered event log (workflows/events.py) that the `events` query
reads. However many clients watch one run, this process asks Temporal for its new
events once per poll interval: a `_Watcher` per run holds what it fetched and every
subscriber reads from it at its own cursor. A subscriber that starts further back than
the watcher (a reconnect with an old `Last-Event-ID`) reads that backlog directly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from api.errors import APIError
from workflows.messages import FINAL_EVENT_TYPES, TERMINAL_STATUSES, EventsPage, RunEvent

logger = logging.getLogger(__name__)

FetchEvents = Callable[[str, int], Awaitable[EventsPage]]
"""(run id, after) -> the run's events after that id (the `events` query, or the memo)."""

MAX_BACKOFF_SECONDS = 5.0
BUFFER_LIMIT = 5000
"""Events a watcher keeps; a subscriber that falls further behind reads the rest directly."""


async def next_event(events: AsyncIterator[RunEvent], deadline: float) -> RunEvent:
    """The next of `events` before the loop time `deadline` (TimeoutError after it), awaited
    in the caller's task. Unlike `asyncio.wait_for`, which awaits it in a task of its own, a
    client that hangs up cancels the generator itself: it is never left running while the
    stream closes it ("aclose(): asynchronous generator is already running")."""
    async with asyncio.timeout_at(deadline):
        return await anext(events)


class RunEventsHub:
    """The watchers of this process, one per run that has subscribers."""

    def __init__(self, fetch: FetchEvents, poll_seconds: float) -> None:
        self._fetch_page = fetch
        self._poll_seconds = poll_seconds
        self._watchers: dict[str, _Watcher] = {}
        self.fetches = 0
        """Event pages asked of Temporal so far (for tests and metrics)."""

    def watchers(self, run_id: str) -> int:
        """Subscribers of `run_id`'s watcher (0 when none)."""
        watcher = self._watchers.get(run_id)
        return watcher.subscribers if watcher else 0

    async def fetch(self, run_id: str, after: int) -> EventsPage:
        self.fetches += 1
        return await self._fetch_page(run_id, after)

    async def follow(self, run_id: str, after: int) -> AsyncGenerator[RunEvent, None]:
        """Every event of `run_id` numbered above `after`, as they happen, until its final one."""
        watcher = self._watchers.get(run_id)
        if watcher is None:
            watcher = self._watchers[run_id] = _Watcher(self, run_id, after, self._poll_seconds)
        watcher.subscribers += 1
        try:
            async for event in watcher.follow(after):
                yield event
        finally:
            watcher.subscribers -= 1
            if watcher.subscribers == 0:
                if self._watchers.get(run_id) is watcher:
                    del self._watchers[run_id]
                await watcher.stop()

    async def aclose(self) -> None:
        watchers, self._watchers = list(self._watchers.values()), {}
        for watcher in watchers:
            await watcher.stop()


class _Watcher:
    """Polls one run's events from `base` on and wakes its subscribers."""

    def __init__(self, hub: RunEventsHub, run_id: str, base: int, poll_seconds: float) -> None:
        self._hub = hub
        self._run_id = run_id
        self._poll_seconds = poll_seconds
        self.subscribers = 0
        self._events: list[RunEvent] = []  # contiguous ids, newest last
        self._last_id = base
        self._synced = False
        """Whether a fetch has told the run's real last event id (`base` may lie beyond it)."""
        self._ended = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._poll(), name=f"events-{run_id}")

    async def follow(self, after: int) -> AsyncIterator[RunEvent]:
        cursor = after
        while True:
            if self._synced and cursor == after and cursor > self._last_id:
                # A resume point past the run's events means "from now on". Only the resume point
                # itself: a cursor moved by events read directly is a real id, however far the
                # watcher's own polling has got.
                cursor = after = self._last_id
            first_buffered = self._events[0].id if self._events else self._last_id + 1
            if cursor + 1 < first_buffered and cursor < self._last_id:
                # Older than this watcher's buffer: read the gap directly.
                changed = self._changed
                page = await self._hub.fetch(self._run_id, cursor)
                fresh = [event for event in page.events if event.id < first_buffered]
                for event in fresh:
                    yield event
                    cursor = event.id
                if any(event.type in FINAL_EVENT_TYPES for event in fresh):
                    return
                if fresh:
                    continue
                if self._synced:
                    cursor = max(cursor, first_buffered - 1)  # dropped at continue-as-new
                    continue
                # The gap's end is a resume point past the run's events, not an event: wait
                # until the watcher's first poll says where the run is.
                if self._ended:
                    return
                await changed.wait()
                continue
            for event in self._events[max(0, cursor + 1 - first_buffered) :]:
                yield event
                cursor = event.id
                if event.type in FINAL_EVENT_TYPES:
                    return
            if self._ended and cursor >= self._last_id:
                return
            changed = self._changed
            await changed.wait()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _poll(self) -> None:
        backoff = self._poll_seconds
        try:
            while not self._ended:
                try:
                    page = await self._hub.fetch(self._run_id, self._last_id)
                except APIError as err:  # no worker or Temporal unreachable: keep trying
                    if err.status == 404:
                        self._ended = True
                        break
                    logger.info("events of %s: %s", self._run_id, err.message)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    await asyncio.sleep(backoff)
                    continue
                backoff = self._poll_seconds
                if page.last_id < self._last_id:  # the first subscriber resumed past the run's events
                    self._last_id = page.last_id
                self._synced = True
                if page.events:
                    self._events.extend(event for event in page.events if event.id > self._last_id)
                    del self._events[:-BUFFER_LIMIT]
                    self._last_id = max(self._last_id, page.events[-1].id)
                    self._ended = any(event.type in FINAL_EVENT_TYPES for event in page.events)
                # A finished run whose every event has been read has nothing more to say.
                self._ended = self._ended or (page.status in TERMINAL_STATUSES and page.last_id <= self._last_id)
                self._wake()
                if len(page.events) == 0 or page.last_id <= self._last_id:
                    await asyncio.sleep(self._poll_seconds)
        except Exception:  # the streams end; their clients reconnect with Last-Event-ID
            logger.exception("following the events of %s failed", self._run_id)
        finally:
            self._ended = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
