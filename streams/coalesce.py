"""Coalesced runs: what a run of back-to-back events changes is sent once per key when the run ends.

A grid reading touches its zone's bookkeeping, its tumbling window and the zone's routing view, and changes
13 windows that ``zone.windows`` publishes; a telemetry sample rewrites its node's state. Sending every such change
(a changelog record per table write, a record per window) made the producer, and the broker behind it, the
bottleneck. Inside a run the agents write tables in memory at once (so every read sees them) and the changelog
record of each key, and the latest record per coalescing key, go out when the run ends: ``max_delay_ms`` after its
first event (checked as each event is done, and by a timer for a run no further event closes), or after
``max_events``. With a delay of 0 every event is a run of one, sent at once. (Whether more events are waiting cannot
tell where a run ends: Faust hands a stream its events one at a time, so its queue always looks empty.)

The run's events are acked only after its records are handed to the producer, so an offset is never committed
ahead of the state it caused (at-least-once, as before). Each changelog record goes to the partition of the event
that last wrote the key, as Faust's own table writes do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from faust.types import EventT

from streams.emit import Emitter

_DELETED = object()


class CoalescedRun:
    """One agent's stream, taken in runs: iterate :meth:`events`, write tables with :meth:`set` / :meth:`pop` and
    publish derived records with :meth:`emit_latest`; the run's end sends them and acks its events."""

    def __init__(self, stream: Any, emitter: Emitter, max_events: int, max_delay_ms: float) -> None:
        self.stream = stream.noack()
        self.emitter = emitter
        self.max_events = max_events
        self.max_delay_s = max_delay_ms / 1000.0
        self.events_held: list[EventT] = []
        self.current: EventT | None = None
        self._ends: bool | None = None
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timed_flush: asyncio.Future[None] | None = None
        self._changes: dict[tuple[str, Any], tuple[Any, int]] = {}  # (table, key) -> (table, partition)
        self._emits: dict[Any, tuple[str, str, Callable[[], dict[str, Any]]]] = {}

    async def events(self) -> AsyncIterator[EventT]:
        async for event in self.stream.events():
            self.current, self._ends = event, None
            if not self.events_held and not self._changes and not self._emits:
                self._started = time.monotonic()
            yield event
            self.events_held.append(event)
            if self.ends_here():
                await self.flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.max_delay_s, self._on_timer)

    def ends_here(self) -> bool:
        """Whether the event being processed ends the run (decided once per event)."""
        if self._ends is None:
            self._ends = (
                len(self.events_held) + 1 >= self.max_events or time.monotonic() - self._started >= self.max_delay_s
            )
        return self._ends

    def _on_timer(self) -> None:
        self._timer = None
        if self.events_held:
            self._timed_flush = asyncio.ensure_future(self.flush())

    def set(self, table: Any, key: Any, value: Any) -> None:
        table.data[key] = value
        self._changed(table, key)

    def pop(self, table: Any, key: Any) -> None:
        if key in table.data:
            del table.data[key]
            self._changed(table, key)

    def _changed(self, table: Any, key: Any) -> None:
        assert self.current is not None, "a table is written only while an event is processed"
        self._changes[(table.name, key)] = (table, self.current.message.partition)

    def emit_latest(self, coalesce_key: Any, topic: str, key: str, make_record: Callable[[], dict[str, Any]]) -> None:
        """Emit the record ``make_record`` builds when the run ends, unless a later emit with the same
        ``coalesce_key`` replaces it (so only records that are sent get built)."""
        self._emits[coalesce_key] = (topic, key, make_record)

    async def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        changes, emits, held = self._changes, self._emits, self.events_held
        self._changes, self._emits, self.events_held = {}, {}, []
        for (_name, key), (table, partition) in changes.items():
            value = table.data.get(key, _DELETED)
            if value is _DELETED:
                table.send_changelog(partition, key, None, value_serializer="raw")
            else:
                table.send_changelog(partition, key, value)
        for topic, key, make_record in emits.values():
            await self.emitter.emit(topic, key, make_record())
        for event in held:
            await self.stream.ack(event)
