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

State before effects. A run ends in Kafka Streams' order, in three steps:

1. the state: every changed key's changelog record and the run's own log records (:meth:`log`: the workload events
   the placement owner appends to its own log) are sent at once;
2. the effects (:meth:`emit`, :meth:`emit_latest`): what another process acts on (a node's start command, a
   decision, a receipt, a view for the placement owner) leave only once the brokers acked the state that caused
   them, so a worker killed mid-run never leaves a command out whose reservation the next owner does not see, and a
   node's answer to a command always lands in the workload log after the owner's own event that sent it;
3. the run's events are acked (Faust flushes the producer before it commits their offsets).

Steps 2 and 3 run in the background, one run after the other (a run's effects never overtake the previous run's,
its acks neither), while the agent goes on with the next events: the wait for the acks adds one round trip to the
brokers to what an event causes, not to every event behind it. A wait longer than ``state_wait_s`` (a batch the
producer keeps retrying while a broker is away) lets the effects leave anyway, with a warning: a stalled run would
otherwise hold every later one back. A run's events are acked only once its state is durable, however long that
takes: a changelog record that failed to deliver is replaced by the key's value as it is now, until it lands (a run
with log records stays unacked instead, and is delivered again at the next rebalance). Together with the consumer's
commit rule (``faust_private.Consumer``: only these acks count, and never past an offset not acked) a committed
offset never passes an event whose state is not in the changelog.

A rebalance ends every run that is open or in flight on this worker: a run not ended yet is rolled back (its table
writes undone in memory, its records dropped, its events left unacked), and a run whose state went out before the
rebalance sends no effects and no acks after it. Its events are delivered again from the last committed offset, to
this worker or to the partition's new owner, and the stamps and the outbox below sort out what was already applied.
Otherwise a worker that lost a partition would send, after the new owner took over, windows older than the new
owner's (a window in DuckDB going back) and state the new owner did not see.

Redelivery. Events after the last committed offset are delivered again to whoever owns their partition next. A
table made with ``stamped`` holds :class:`Stamped` values: each value carries, per source topic-partition, the
offset of the last event applied to it, in the same changelog record as the value itself. So whether a value has
taken in an event is known per key, atomically: :meth:`applied` says whether the event being processed is already
in the stored value (a redelivery), and the agent then leaves that key alone (a zone's windows, a node's state).

The outbox. An agent that is idempotent by itself (the router remembers the ids of the events it applied) does
nothing for a redelivered event, so the effects of an event whose state went out but whose effects were lost with
the worker would never be sent. A checkpoint given an ``outbox`` table keeps, per event key (a workload), the
records each of its last events sent, stamped like the rest, in one changelog record; a redelivered event that
changes nothing and sends nothing, and after which nothing changed the key's state, sends them again, the same
records with the same ids (the sinks keep one of each; a node ignores a start for a workload it runs). A later
event that changes the key's state (the node's `started`) moves the stamp on while entries are kept, so an earlier
event delivered again does not start a workload that may have ended since. An entry is dropped once its records were
delivered, or ``outbox_keep_s`` after it was written, long after its offset was committed.
Each changelog record goes to the partition of the event that last wrote the key, as Faust's own table writes do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

import msgspec
from faust.types import EventT, StreamT, TableT

from streams import faust_private
from streams.emit import Emitter, Payload, wire
from toogreen.domain.clock import SYSTEM_CLOCK, Clock

V = TypeVar("V")
_DELETED = object()
log = logging.getLogger(__name__)


class Stamped(msgspec.Struct, Generic[V], frozen=True):
    """A table value and, per source ``topic:partition``, the offset of the last event applied to it."""

    value: V
    applied: dict[str, int] = {}


_rebalances = [0]  # how many rebalances this process has seen (runs started before the latest one are void)


def partitions_revoked() -> None:
    """Called when the worker's partitions are revoked (a rebalance begins): every open and in-flight run is void."""
    _rebalances[0] += 1


class Sent(msgspec.Struct, frozen=True, array_like=True):
    """One record an event sent, as it was sent: to its own log (state) or as an effect."""

    topic: str
    key: str
    record: dict[str, Any]
    log: bool


Outbox = dict[str, list[Sent]]  # by the input offset of the event that sent them


def source_of(event: EventT) -> str:
    """The key of an event's topic-partition in :attr:`Stamped.applied`."""
    return f"{event.message.topic}:{event.message.partition}"


def unstamped(stored: Stamped[V] | None) -> V | None:
    return None if stored is None else stored.value


class Checkpoint:
    """One agent's stream, taken in runs: iterate :meth:`events`, write tables with :meth:`set` / :meth:`pop` (or
    through :meth:`table`), append to the agent's own log with :meth:`log` and send effects with :meth:`emit` and
    :meth:`emit_latest`; the run's end (:meth:`flush`) sends the state, then, once it is acked, the effects, then
    acks the run's events. ``stamped``: the tables whose values are :class:`Stamped` (written through :meth:`set`,
    which stamps them with the event being processed)."""

    def __init__(
        self,
        stream: StreamT,
        emitter: Emitter,
        max_events: int,
        max_delay_ms: float,
        clock: Clock | None = None,
        stamped: Collection[TableT] = (),
        state_wait_s: float = 5.0,
        max_runs_in_flight: int = 64,
        outbox: TableT | None = None,
        outbox_keep_s: float = 60.0,
    ) -> None:
        self.stream = faust_private.without_auto_ack(stream)
        self.emitter = emitter
        self.max_events = max_events
        self.max_delay_s = max_delay_ms / 1000.0
        self.clock = clock or SYSTEM_CLOCK
        self.stamped = {t.name for t in stamped} | ({outbox.name} if outbox is not None else set())
        self.outbox, self.outbox_keep_s = outbox, outbox_keep_s
        self._sent: list[Sent] = []  # what the event being processed sent (kept in the outbox)
        self._writes = 0  # table writes so far (did the event being processed change anything?)
        self._outbox_kept: deque[tuple[float, Any, str]] = deque()  # (when, key, offset) of each entry, oldest first
        self.resent = 0  # redelivered events whose records were sent again from the outbox
        self._outbox_run: list[tuple[str, str]] = []  # the (key, offset) entries the open run wrote or sent again
        self._forgetting: set[asyncio.Future[None]] = set()  # runs whose outbox entries go once their records land
        self.state_wait_s = state_wait_s
        self.max_runs_in_flight = max_runs_in_flight
        self.events_held: list[EventT] = []
        self.current: EventT | None = None
        self._ends: bool | None = None
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timed_flush: asyncio.Future[None] | None = None
        self._changes: dict[tuple[str, Any], tuple[TableT, int]] = {}  # (table, key) -> (table, partition)
        self._emits: dict[Any, tuple[str, str, Callable[[], Payload], bool, int | None]] = {}
        # the agent's own end of a run, however the run ended (its last event or the timer), before it is sent
        self.on_run_end: Callable[[], Awaitable[None]] | None = None
        # told which (table, key) a rolled-back run's writes were undone for: an agent's in-memory view built from
        # those tables (the router's fleet) must follow them back
        self.on_rolled_back: Callable[[list[tuple[TableT, Any]]], None] | None = None
        self._logs: list[tuple[str, str, Payload]] = []  # state: sent with the changelog records
        self._effects: list[tuple[str, str, Payload]] = []  # sent once the state is acked
        self._send = asyncio.Lock()  # runs hand their state to the producer one at a time, in order
        self._tail: asyncio.Future[None] | None = None  # the last run whose effects and acks are still to go
        self._in_flight = 0
        self.late_runs = 0  # runs whose effects left before their state was acked (state_wait_s ran out)
        self.failed_runs = 0  # runs whose state failed to deliver (their events stay unacked)
        self._undo: dict[tuple[str, Any], tuple[TableT, Any]] = {}  # each key's value before the open run wrote it
        self._run_rebalances = _rebalances[0]  # the rebalances seen when the open run started
        self.rolled_back = 0  # runs a rebalance voided before they ended

    async def events(self) -> AsyncIterator[EventT]:
        async for event in self.stream.events():
            if not await faust_private.takes_in(self.stream, event):
                await faust_private.leave_out(self.stream, event)  # out of its partition's order: it comes again
                continue
            self.current, self._ends = event, None
            if self._run_rebalances != _rebalances[0]:
                self._roll_back()
            if not (self.events_held or self._changes or self._emits or self._logs or self._effects):
                self._started = self.clock.monotonic_s()
            writes, self._sent = self._writes, []
            yield event
            if self.outbox is not None:
                self._outbox_after(event, changed=self._writes != writes)
                self._drop_old_outbox_entries()
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

    def _outbox_after(self, event: EventT, changed: bool) -> None:
        """Keep what ``event`` sent in the outbox; or, for a redelivery that changed and sent nothing, send again
        what it sent the first time."""
        assert self.outbox is not None
        raw = event.message.key
        if raw is None:
            return
        key = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
        offset = str(event.message.offset)
        stored = faust_private.table_data(self.outbox).get(key)
        kept: Outbox = dict(stored.value) if isinstance(stored, Stamped) else {}
        if self._sent:
            kept[offset] = self._sent
            self.set(self.outbox, key, kept)
            self._outbox_kept.append((self.clock.monotonic_s(), key, offset))
            self._outbox_run.append((key, offset))
        elif not changed and offset in kept and self._latest_for_key(stored, event):
            self.resent += 1
            self._outbox_run.append((key, offset))
            for sent in kept[offset]:
                (self._logs if sent.log else self._effects).append((sent.topic, sent.key, sent.record))
        elif changed and kept:
            # a later event changed the key's state (the node's answer to a start, say): the stamp moves on, and an
            # earlier event delivered again no longer sends its records (the node had them)
            self.set(self.outbox, key, kept)
        self._sent = []

    def _latest_for_key(self, stored: Any, event: EventT) -> bool:
        """Whether ``event`` is the last event applied to its key (nothing after it changed the key's state)."""
        return isinstance(stored, Stamped) and stored.applied.get(source_of(event)) == event.message.offset

    def _drop_old_outbox_entries(self) -> None:
        """Forget the outbox entries written more than ``outbox_keep_s`` ago (their events were committed long
        since); written while an event is processed, like any table write."""
        assert self.outbox is not None
        data = faust_private.table_data(self.outbox)
        horizon = self.clock.monotonic_s() - self.outbox_keep_s
        while self._outbox_kept and self._outbox_kept[0][0] < horizon:
            _when, key, offset = self._outbox_kept.popleft()
            stored = data.get(key)
            if not isinstance(stored, Stamped) or offset not in stored.value:
                continue
            left = {o: sent for o, sent in stored.value.items() if o != offset}
            if left:
                self._before_write(self.outbox, key)
                data[key] = Stamped(left, stored.applied)
                self._changed(self.outbox, key)
            else:
                self.pop(self.outbox, key)

    def _roll_back(self) -> None:
        """Void the open run: undo its table writes, drop its records, leave its events unacked."""
        if self.events_held or self._changes:
            self.rolled_back += 1
        undone = [(table, key) for (_name, key), (table, _before) in self._undo.items()]
        for (_name, key), (table, before) in self._undo.items():
            data = faust_private.table_data(table)
            if before is _DELETED:
                data.pop(key, None)
            else:
                data[key] = before
        if undone and self.on_rolled_back is not None:
            self.on_rolled_back(undone)
        self._undo, self._changes, self._emits, self._logs, self._effects = {}, {}, {}, [], []
        self._outbox_run = []
        self.events_held = []
        self._run_rebalances = _rebalances[0]

    def _on_timer(self) -> None:
        self._timer = None
        if self.events_held:
            self._timed_flush = asyncio.ensure_future(self.flush())

    # --- state ----------------------------------------------------------------------------------------------------

    def get(self, table: TableT, key: Any) -> Any:
        """The value of ``key`` (without its stamp in a stamped table), or None."""
        stored = faust_private.table_data(table).get(key)
        return stored.value if isinstance(stored, Stamped) else stored

    def applied(self, table: TableT, key: Any) -> bool:
        """Whether the stored value of ``key`` in a stamped table has already taken in the event being processed
        (it is a redelivery for that key)."""
        assert self.current is not None, "asked while an event is processed"
        stored = faust_private.table_data(table).get(key)
        if not isinstance(stored, Stamped):
            return False
        done = stored.applied.get(source_of(self.current))
        return done is not None and self.current.message.offset <= done

    def _before_write(self, table: TableT, key: Any) -> None:
        if (table.name, key) not in self._undo:
            self._undo[(table.name, key)] = (table, faust_private.table_data(table).get(key, _DELETED))

    def set(self, table: TableT, key: Any, value: Any) -> None:
        data = faust_private.table_data(table)
        self._before_write(table, key)
        if table.name in self.stamped:
            assert self.current is not None, "a table is written only while an event is processed"
            before = data.get(key)
            applied = dict(before.applied) if isinstance(before, Stamped) else {}
            applied[source_of(self.current)] = self.current.message.offset
            value = Stamped(value, applied)
        data[key] = value
        self._changed(table, key)

    def pop(self, table: TableT, key: Any) -> None:
        data = faust_private.table_data(table)
        if key in data:
            self._before_write(table, key)
            del data[key]
            self._changed(table, key)

    def table(self, table: TableT) -> CheckpointedTable[Any]:
        """``table`` as a mutable mapping whose writes go through this checkpoint."""
        return CheckpointedTable(self, table)

    def _changed(self, table: TableT, key: Any) -> None:
        assert self.current is not None, "a table is written only while an event is processed"
        self._changes[(table.name, key)] = (table, self.current.message.partition)
        self._writes += 1

    def log(self, topic: str, key: str, record: Payload) -> None:
        """Append ``record`` to a log that is itself state (the placement owner's workload events) when the run
        ends, sent with the run's changelog records, before any effect."""
        self._logs.append((topic, key, record))
        if self.outbox is not None:
            self._sent.append(Sent(topic, key, wire(record), log=True))

    # --- effects --------------------------------------------------------------------------------------------------

    def emit(self, topic: str, key: str, record: Payload) -> None:
        """Send ``record`` when the run ends, once the run's state is acked (commands, decisions, receipts)."""
        self._effects.append((topic, key, record))
        if self.outbox is not None:
            self._sent.append(Sent(topic, key, wire(record), log=False))

    def emit_latest(
        self,
        coalesce_key: Any,
        topic: str,
        key: str,
        make_record: Callable[[], Payload],
        internal: bool = False,
        partition: int | None = None,
    ) -> None:
        """Emit the record ``make_record`` builds when the run ends, unless a later emit with the same
        ``coalesce_key`` replaces it (so only records that are sent get built). ``internal``: to one of the
        worker's own topics, on ``partition`` (None: the key's)."""
        self._emits[coalesce_key] = (topic, key, make_record, internal, partition)

    # --- the run's end --------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.on_run_end is not None and self.events_held:
            await self.on_run_end()  # what it writes and emits belongs to this run
        if self._run_rebalances != _rebalances[0]:
            self._roll_back()
            return
        self._undo = {}
        changes, emits, held, logs = self._changes, self._emits, self.events_held, self._logs
        effects: list[_Effect] = [(t, k, r, False, None) for t, k, r in self._effects]
        self._changes, self._emits, self.events_held, self._logs, self._effects = {}, {}, [], [], []
        kept, self._outbox_run = self._outbox_run, []
        # the records are built now, from what the run left in them (a later run may change the tables)
        effects += [
            (topic, key, make(), internal, partition) for topic, key, make, internal, partition in emits.values()
        ]
        async with self._send:  # taken in the order the runs ended, without a wait when free
            state = await _publish_state(changes)
            for topic, key, record in logs:
                state.append(await self.emitter.emit(topic, key, record))
            resend = None if logs else changes  # a log record cannot be sent again as a value: only table state
            if self.max_runs_in_flight > 0:
                tail = asyncio.ensure_future(
                    self._effects_then_acks(self._tail, state, effects, held, _rebalances[0], kept, resend)
                )
                self._tail = tail
                self._in_flight += 1
                tail.add_done_callback(self._run_done)
        if self.max_runs_in_flight == 0:  # no overlap: the run's end is done before the next event is taken
            await self._effects_then_acks(None, state, effects, held, _rebalances[0], kept, resend)
        elif self._in_flight > self.max_runs_in_flight:  # the brokers are slow to ack: do not run far ahead of them
            await asyncio.wait([tail])

    def _run_done(self, _tail: asyncio.Future[None]) -> None:
        self._in_flight -= 1

    async def settled(self) -> None:
        """Wait until every ended run's effects were sent and its events acked."""
        if self._tail is not None:
            await asyncio.wait([self._tail])

    async def _effects_then_acks(
        self,
        previous: asyncio.Future[None] | None,
        state: list[Awaitable[Any]],
        effects: list[_Effect],
        held: list[EventT],
        rebalances: int,
        kept: list[tuple[str, str]],
        resend: dict[tuple[str, Any], tuple[TableT, int]] | None = None,
    ) -> None:
        delivered, late = await self._delivered(state)  # late: its effects leave now, its acks once it is durable
        if not delivered and resend:
            delivered, late = await self._durable([], resend, rebalances), False
        if previous is not None:
            await asyncio.wait([previous])  # its effects first, then ours: a stop before the next start
        if not delivered or rebalances != _rebalances[0]:
            return  # neither effects nor acks: the run's events are delivered again (a rebalance, or a failure)
        sent: list[Awaitable[Any]] = []
        for topic, key, record, internal, partition in effects:
            if internal:
                sent.append(await self.emitter.emit_internal(topic, key, record, partition))
            else:
                sent.append(await self.emitter.emit(topic, key, record))
        if kept and held:
            forget = asyncio.ensure_future(self._forget_when_delivered(sent, kept, held[-1].message.partition))
            self._forgetting.add(forget)
            forget.add_done_callback(self._forgetting.discard)
        if late and not await self._durable(state, resend, rebalances):
            return
        for event in held:
            await faust_private.ack(self.stream, event)

    async def _durable(
        self, state: list[Awaitable[Any]], resend: dict[tuple[str, Any], tuple[TableT, int]] | None, rebalances: int
    ) -> bool:
        """Wait until the run's state is durable, however long it takes (its effects may have left already, after
        ``state_wait_s``): a run's events are acked, and so may be committed, only then. ``state`` empty: it failed
        already. A failed record is replaced by the key's value as it is now (which holds the run's change and any
        later one) until it lands or a rebalance voids the run; a run with log records (which cannot be sent again
        as a value) stays unacked instead. Without this, a run acked while its state was still in flight, whose state
        then failed (a broker killed), could be committed with its events never coming again: the worker's memory held
        them and the changelog did not, and the partition's next owner recovered windows short of them."""
        pending, failed = state, not state
        while True:
            if pending:
                errors, _late = await self.emitter.delivered(pending, 3600.0)
                failed = bool(errors)
                if failed:
                    log.warning("a run's state failed to deliver (%r)", errors[0])
            if rebalances != _rebalances[0]:
                return False
            if not failed:
                return True
            if not resend:
                return False  # its events stay unacked: delivered again at the next rebalance
            pending = await _publish_state(resend)

    async def _forget_when_delivered(
        self, sent: list[Awaitable[Any]], kept: list[tuple[str, str]], partition: int
    ) -> None:
        """Drop the outbox entries of a run once the brokers acked every record it sent: its event, should it come
        again, needs nothing sent again (a start command sent twice would start a workload that already ended)."""
        assert self.outbox is not None
        failed, late = await self.emitter.delivered(sent, self.outbox_keep_s)
        if failed or late:
            return  # kept: sent again if the event comes again
        data = faust_private.table_data(self.outbox)
        for key, offset in kept:
            stored = data.get(key)
            if not isinstance(stored, Stamped) or offset not in stored.value:
                continue
            left = {o: records for o, records in stored.value.items() if o != offset}
            if left:
                data[key] = Stamped(left, stored.applied)
                await faust_private.publish_changelog(self.outbox, partition, key, data[key])
            else:
                del data[key]
                await faust_private.publish_changelog(self.outbox, partition, key, None)

    async def _delivered(self, state: list[Awaitable[Any]]) -> tuple[bool, bool]:
        """Wait (at most ``state_wait_s``) until the brokers acked every record of ``state``: whether none failed,
        and whether some were still unacked when the wait ran out."""
        if not state:
            return True, False
        failed, late = await self.emitter.delivered(state, self.state_wait_s)
        if failed:
            self.failed_runs += 1
            log.error("a run's state failed to deliver (%r): not acked until it is durable", failed[0])
            return False, False
        if late:
            self.late_runs += 1
            if self.late_runs % 100 == 1:
                log.warning("%d state records of a run not acked after %.1f s: its effects leave anyway (%d such "
                            "runs)", late, self.state_wait_s, self.late_runs)  # fmt: skip
        return True, bool(late)


_Effect = tuple[str, str, Payload, bool, int | None]  # topic, key, record, to the worker's own topic, on partition


async def _publish_state(changes: dict[tuple[str, Any], tuple[TableT, int]]) -> list[Awaitable[Any]]:
    """Each changed key's value as the table holds it now (a deletion as None) to its changelog partition."""
    state: list[Awaitable[Any]] = []
    for (_name, key), (table, partition) in changes.items():
        value = faust_private.table_data(table).get(key, _DELETED)
        state.append(await faust_private.publish_changelog(table, partition, key, None if value is _DELETED else value))
    return state


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
