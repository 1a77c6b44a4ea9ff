"""The checkpoint: the one way the agents write tables and publish derived records (quix-streams' checkpoint:
what a run of back-to-back events changed is flushed once per key, then the run's events are committed).

A grid reading touches its zone's bookkeeping, its tumbling window and the zone's routing view, and changes
13 windows that ``zone.windows`` publishes; a telemetry sample rewrites its node's state. Sending every such change
(a changelog record per table write, a record per window) made the producer, and the broker behind it, the
bottleneck. Inside a run the agents write tables in memory at once (so every read sees them) and the changelog
record of each key, and the latest record per coalescing key, go out when the run ends: ``max_delay_ms`` after its
first event (checked as each event is done, and by a timer for a run no further event closes), or after
``max_events``. With a delay of 0 every event is a run of one, sent at once. (Whether more events are waiting cannot
tell where a run ends: Faust hands a stream its events one at a time, so its queue always looks empty.)

The run's events are acked only after its records are handed to the producer, so an offset is never committed
ahead of the state it caused (at-least-once). Each changelog record goes to the partition of the event that last
wrote the key, as Faust's own table writes do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from faust.types import EventT, StreamT, TableT

from streams import faust_private
from streams.emit import Emitter, Payload
from toogreen.domain.clock import SYSTEM_CLOCK, Clock

V = TypeVar("V")
_DELETED = object()


class Checkpoint:
    """One agent's stream, taken in runs: iterate :meth:`events`, write tables with :meth:`set` / :meth:`pop` (or
    through :meth:`table`) and publish derived records with :meth:`emit_latest`; the run's end (:meth:`flush`)
    sends them and acks its events."""

    def __init__(
        self, stream: StreamT, emitter: Emitter, max_events: int, max_delay_ms: float, clock: Clock | None = None
    ) -> None:
        self.stream = faust_private.without_auto_ack(stream)
        self.emitter = emitter
        self.max_events = max_events
        self.max_delay_s = max_delay_ms / 1000.0
        self.clock = clock or SYSTEM_CLOCK
        self.events_held: list[EventT] = []
        self.current: EventT | None = None
        self._ends: bool | None = None
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timed_flush: asyncio.Future[None] | None = None
        self._changes: dict[tuple[str, Any], tuple[TableT, int]] = {}  # (table, key) -> (table, partition)
        self._emits: dict[Any, tuple[str, str, Callable[[], Payload], bool]] = {}
        # the agent's own end of a run, however the run ended (its last event or the timer), before it is sent
        self.on_run_end: Callable[[], Awaitable[None]] | None = None

    async def events(self) -> AsyncIterator[EventT]:
        async for event in self.stream.events():
            self.current, self._ends = event, None
            if not self.events_held and not self._changes and not self._emits:
                self._started = self.clock.monotonic_s()
            yield event
            ends = self.ends_here()  # decided with this event not yet held, whether or not the agent asked
            self.events_held.append(event)
            if ends:
                await self.flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.max_delay_s, self._on_timer)

    def ends_here(self) -> bool:
        """Whether the event being processed ends the run (decided once per event)."""
        if self._ends is None:
            self._ends = (
                len(self.events_held) + 1 >= self.max_events
                or self.clock.monotonic_s() - self._started >= self.max_delay_s
            )
        return self._ends

    def _on_timer(self) -> None:
        self._timer = None
        if self.events_held:
            self._timed_flush = asyncio.ensure_future(self.flush())

    def set(self, table: TableT, key: Any, value: Any) -> None:
        faust_private.table_data(table)[key] = value
        self._changed(table, key)

    def pop(self, table: TableT, key: Any) -> None:
        data = faust_private.table_data(table)
        if key in data:
            del data[key]
            self._changed(table, key)

    def table(self, table: TableT) -> CheckpointedTable[Any]:
        """``table`` as a mutable mapping whose writes go through this checkpoint."""
        return CheckpointedTable(self, table)

    def _changed(self, table: TableT, key: Any) -> None:
        assert self.current is not None, "a table is written only while an event is processed"
        self._changes[(table.name, key)] = (table, self.current.message.partition)

    def emit_latest(
        self, coalesce_key: Any, topic: str, key: str, make_record: Callable[[], Payload], internal: bool = False
    ) -> None:
        """Emit the record ``make_record`` builds when the run ends, unless a later emit with the same
        ``coalesce_key`` replaces it (so only records that are sent get built). ``internal``: to one of the
        worker's own topics."""
        self._emits[coalesce_key] = (topic, key, make_record, internal)

    async def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.on_run_end is not None and self.events_held:
            await self.on_run_end()  # what it writes and emits belongs to this run
        changes, emits, held = self._changes, self._emits, self.events_held
        self._changes, self._emits, self.events_held = {}, {}, []
        for (_name, key), (table, partition) in changes.items():
            value = faust_private.table_data(table).get(key, _DELETED)
            faust_private.send_changelog(table, partition, key, None if value is _DELETED else value)
        for topic, key, make_record, internal in emits.values():
            record = make_record()
            if internal:
                await self.emitter.emit_internal(topic, key, record)
            else:
                await self.emitter.emit(topic, key, record)
        for event in held:
            await faust_private.ack(self.stream, event)


class CheckpointedTable(MutableMapping[Any, V], Generic[V]):
    """A table read from its store and written through a :class:`Checkpoint`."""

    def __init__(self, checkpoint: Checkpoint, table: TableT) -> None:
        self.checkpoint, self.table = checkpoint, table
        self.data = faust_private.table_data(table)

    def __getitem__(self, key: Any) -> V:
        value: V = self.data[key]
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __setitem__(self, key: Any, value: V) -> None:
        self.checkpoint.set(self.table, key, value)

    def __delitem__(self, key: Any) -> None:
        if key not in self.data:
            raise KeyError(key)
        self.checkpoint.pop(self.table, key)

    def pop(self, key: Any, default: Any = None) -> Any:
        value = self.data.get(key, default)
        self.checkpoint.pop(self.table, key)
        return value

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
