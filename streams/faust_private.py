"""Every use of Faust's internals, in one place, each with a contract test (``tests/agents/test_faust_private.py``)
against real Faust objects, so a Faust upgrade that changes one breaks a named test instead of the worker.

- Tables: their in-memory store (``table.data``), which the checkpoint writes at once and whose changelog it sends
  itself (the record ``table.send_changelog`` would queue, published at once), and the codec a table's changelog
  is written and restored with.
- Streams: taken without Faust's own acks (``stream.noack()``), acked by the checkpoint (``stream.ack``).
- The Kafka transport with a configurable fetch wait. Faust builds its aiokafka consumer with
  ``fetch_max_wait_ms=1500``. A broker that holds a fetch until that wait ends (the embedded Tansu broker does,
  even when records arrive meanwhile) then adds up to 1.5 s to every hop of an idle pipeline: submission to
  decision took 0.4-0.8 s at 20 submissions/s. This transport, registered as the ``toogreen://`` broker scheme,
  sets ``worker.fetch_max_wait_ms`` instead; all else is Faust's own.
- A source partition without a committed offset is read from its beginning after a rebalance (aiokafka leaves it
  where a fetch during recovery left it, past records that were then dropped).
- Seeking a changelog partition below offset 0, or to no offset (which recovery does while a broker is down),
  seeks its start.
- A source partition is taken in only once it was sought in the current generation, and then in order
  (:meth:`Consumer.takes_in`): Faust hands the streams records fetched before that seek.
- Offsets are committed only up to what the agents applied (:class:`Consumer`): an ack counts only when the
  checkpoint makes it (:func:`ack`), and a commit never passes the lowest offset not acked yet.
- Topic declaration at start-up waits for a broker that is down: Faust asks the first broker its metadata lists for
  the controller, and a worker started while that broker was down exited with ``NodeNotReadyError``. This transport
  retries with back-off (refreshing the metadata, logging the first failure and then every tenth) until it is
  declared or the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from faust.exceptions import NotReady
from faust.serializers import codecs
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, StreamT, TableT
from faust.types.tuples import FutureMessage, Message

from toogreen.settings import get_settings

SCHEME = "toogreen"
log = logging.getLogger(__name__)


# --- tables -------------------------------------------------------------------------------------------------------


def table_data(table: TableT) -> MutableMapping[Any, Any]:
    """The table's in-memory store: written here, nothing is sent (the changelog is the caller's to send)."""
    data: MutableMapping[Any, Any] = table.data
    return data


def send_changelog(table: TableT, partition: int, key: Any, value: Any) -> FutureMessage:
    """Queue the changelog record of ``key`` (its value, or its deletion when ``value`` is None) on the producer."""
    if value is None:
        return table.send_changelog(partition, key, None, value_serializer="raw")  # a tombstone, not a JSON null
    return table.send_changelog(partition, key, value)


async def publish_changelog(table: TableT, partition: int, key: Any, value: Any) -> FutureMessage:
    """Hand the changelog record of ``key`` (a tombstone when ``value`` is None) to the producer now: the record
    Faust's own table write would queue (:func:`send_changelog`), published at once instead of through Faust's
    producer buffer, whose one-at-a-time drain held the agents back once it passed 100 records (``producer buffer
    full``). The returned future completes when the brokers acked it."""
    collection: Any = table  # the serializers and the sent-callback are Collection's, not TableT's
    fut: FutureMessage = table.changelog_topic.as_future_message(
        key=key,
        value=value,
        partition=partition,
        key_serializer=collection.key_serializer,
        value_serializer="raw" if value is None else collection.value_serializer,
        callback=collection._on_changelog_sent,  # what Faust's write would call: it notes the record's offset
        eager_partitioning=True,
    )
    await table.changelog_topic.publish_message(fut, wait=False)
    return fut


class TableCodec(codecs.Codec):
    """How one table's values are written to and read from its changelog."""

    def __init__(self, dumps: Any, loads: Any) -> None:
        super().__init__()
        self._dumps_value, self._loads_value = dumps, loads

    def _dumps(self, obj: Any) -> bytes:
        out: bytes = self._dumps_value(obj)
        return out

    def _loads(self, s: bytes) -> Any:
        return self._loads_value(s)


def use_value_codec(table: TableT, name: str, codec: TableCodec) -> None:
    """Write and restore ``table``'s changelog with ``codec`` (registered as ``name``). Faust takes a table's
    value serializer from its value type's model options only, so it is set here, on the table and on its
    changelog topic."""
    codecs.register(name, codec)
    collection: Any = table  # the serializer is an attribute of Faust's Collection, not of TableT
    collection.value_serializer = name  # what the table's own changelog writes use
    # The table manager built the changelog topic (which restores the table) when the table was created.
    collection.changelog_topic = table.changelog_topic.derive(value_serializer=name)


# --- streams ------------------------------------------------------------------------------------------------------


def without_auto_ack(stream: StreamT) -> StreamT:
    """The stream, its events acked only by :func:`ack`."""
    quiet: StreamT = stream.noack()  # type: ignore[attr-defined]  # Stream's, not StreamT's
    return quiet


_APPLIED_ACK: ContextVar[bool] = ContextVar("toogreen_applied_ack", default=False)


async def takes_in(stream: StreamT, event: EventT) -> bool:
    """Whether the agent reading ``stream`` may apply ``event`` now, in its partition's order after the last seek
    (:meth:`Consumer.takes_in`); one it may not is left out with :func:`leave_out` and comes again."""
    consumer: Any = stream.app.consumer
    if not isinstance(consumer, Consumer):
        return True
    taken: bool = await consumer.takes_in(event.message)
    return taken


async def leave_out(stream: StreamT, event: EventT) -> None:
    """Let go of an event the agent did not apply: acked as Faust acks one its stream skipped, which never counts
    towards a commit, so it is read again."""
    await stream.ack(event)


async def ack(stream: StreamT, event: EventT) -> bool:
    """Ack one event the agent applied (its state is durable); whether no other stream holds it any more (its
    offset may then be committed). Only these acks count towards a commit (:meth:`Consumer.ack`)."""
    token = _APPLIED_ACK.set(True)
    try:
        last: bool = await stream.ack(event)
    finally:
        _APPLIED_ACK.reset(token)
    return last


# --- the Kafka transport ------------------------------------------------------------------------------------------


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = get_settings().worker.fetch_max_wait_ms  # read when the consumer starts
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[Any, int | None] = await super().seek_to_committed()
        # (-1, or None: none committed.) aiokafka seeks only partitions with a committed offset above 0 and leaves
        # the others where its fetcher is.
        # A source partition the group never committed (the first owner of workload.events, say) was then read from
        # wherever a fetch made during recovery had left it, and the records fetched while recovery held the stream
        # back were dropped: the first submissions of a run were never routed. It starts from its beginning.
        never = [tp for tp, offset in committed.items() if (offset is None or offset <= 0) and _is_source(tp.topic)]
        if never:
            await self.call_thread(self._ensure_consumer().seek_to_beginning, *never)
        return committed  # type: ignore[return-value]


def _is_source(topic: str) -> bool:
    """Whether ``topic`` is one the agents read (not a table's changelog, not Faust's assignor topic)."""
    return not topic.endswith("-changelog") and "__assignor" not in topic


class Consumer(faust_aiokafka.Consumer):
    """Faust's consumer, committing only what the agents applied.

    Faust commits, per partition, the end of the first run of consecutive acked offsets, and three of its ways lost
    records that no agent had applied (the verifier's windows short by a few readings around a handover):

    - a stream acks, on its own, every event it skips: one fetched before a rebalance (an older generation) or
      taken while the flow is stopped for one. Neither was applied; both are read again after the seek to the
      committed offset, but their acks already count, so a commit could pass them and a worker that died (or lost
      the partition) before it applied them again lost them. Here only the checkpoint's acks count.
    - between a revoke and the seek after the assignment (while the tables recover, seconds) the committed offset
      is unknown (None), and Faust then commits any run of acks, wherever it starts; it also treats a committed
      offset of 0 as unknown. Here nothing is committed until the partition's start is known: its committed offset,
      or for one never committed, its earliest offset (it is read from its beginning).
    - with committed offset C not acked (a run whose state is not durable yet) and C+1 acked, Faust commits past C
      (it checks ``min(acked) - C > 1``). Here the run of acks must start at C.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._commit_from: dict[TP, int] = {}  # per source partition, where the agents' run of acks must start
        # per source partition sought back after a fetch jump: the offset it was sought to, and until when to wait
        self._rewinds: dict[TP, tuple[int, float]] = {}
        # per source partition sought in this generation: (the generation, the next offset the agents take in)
        self._intake: dict[TP, tuple[int, int]] = {}
        self._assigned_once = False  # (a consumer never assigned anything is a test's: its streams take all)
        self._seeking: asyncio.Event | None = None  # set once the seek in progress, if any, has set the intake
        # per source partition read again from its next offset after a record past it came: (offset, until, reads)
        self._reread: dict[TP, tuple[int, float, int]] = {}

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # A fetch can hand Faust a source partition's records from past where it last read (seen after rebalances:
    # offsets 158-180 of the placement log never reached the new owner in a verifier run, and 2-26 offsets of
    # grid, telemetry and node views at a time in others). Faust takes such a jump for a gap in the log (compaction,
    # transaction markers) and counts the missing offsets as acked, so the commit passed over them and they were
    # lost: a `completed` whose hold stayed, submissions never routed, windows short of readings. The agents' source
    # topics are neither compacted nor transactional, so here a jump is a fetch to be made again: the partition is
    # sought back to where it was last read (that record comes again, once more: every agent takes a redelivery),
    # and what was fetched past the jump is left out until the records from there arrive in order.

    async def getmany(self, timeout: float) -> Any:
        rewinds = self._rewinds
        async for tp, message in super().getmany(timeout):
            offset = message.offset
            if tp in rewinds:
                start, until = rewinds[tp]
                if offset != start and time.monotonic() < until:
                    continue  # fetched before the seek back: it comes again, in order
                del rewinds[tp]
                self._read_offset[tp] = offset - 1 if offset > 0 else None  # taken as the next in order
            else:
                read = self._read_offset.get(tp)
                if read is not None and offset > read + 1 and _is_source(tp.topic):
                    log.warning("%s: the fetch jumped from offset %d to %d: sought back to %d", tp, read, offset, read)
                    rewinds[tp] = (read, time.monotonic() + REWIND_WAIT_S)
                    await self._thread.seek_wait({tp: read})
                    continue
            yield tp, message

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # A jump getmany did not catch (none should pass it) is still not counted as acked on a source topic: the
        # commit stays below it, and whoever owns the partition after the next rebalance reads it again.
        if _is_source(tp.topic):
            log.warning("%s: offsets %d-%d were skipped by the fetch; not acked: they are read again after the next "
                        "rebalance", tp, offset_from, offset_to - 1)  # fmt: skip
            return
        await super()._add_gap(tp, offset_from, offset_to)

    def ack(self, message: Message) -> bool:
        if not _APPLIED_ACK.get() or message.generation_id != self.app.consumer_generation_id:
            # skipped by its stream, or applied in a generation a rebalance ended: it comes again; not committed
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        acked: bool = super().ack(message)
        return acked

    async def perform_seek(self) -> None:
        # Records fetched from the sought offsets can reach a stream before the seek has returned: a stream that
        # asks meanwhile waits for the intake the seek sets (left out then, the record at the sought offset would
        # not come again).
        seeking = self._seeking = asyncio.Event()
        try:
            await super().perform_seek()
            sources = [tp for tp in self.assignment() if _is_source(tp.topic)]
            never = [tp for tp in sources if self._committed_offset[tp] is None]
            earliest: Mapping[TP, int | None] = await self.earliest_offsets(*never) if never else {}
            generation = self.app.consumer_generation_id
            for tp in sources:
                committed = self._committed_offset[tp]
                self._commit_from[tp] = committed if committed is not None else (earliest.get(tp) or 0)
                self._intake[tp] = (generation, self._commit_from[tp])
                self._reread.pop(tp, None)
        finally:
            seeking.set()
            if self._seeking is seeking:
                self._seeking = None

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._commit_from.pop(tp, None)
            self._rewinds.pop(tp, None)
            self._intake.pop(tp, None)
            self._reread.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._assigned_once = True
        await super().on_partitions_assigned(assigned, generation_id)

    # Faust hands the streams records of a newly assigned partition before it seeks the partition to its committed
    # offset: the flow resumes while the tables recover, and the fetch goes on from where the consumer was. In the
    # verifier's runs a worker took in grid.readings:3 from offset 12, then the seek to 3 brought 3-11 again, and
    # the stamps (the zone's last applied offset, 12 and more) made those readings look applied: windows short.
    # So the agents take in a source partition's records only once it was sought in the current generation, and
    # then in order. One taken before the seek is left out unacked: the seek brings it again. One past the next
    # offset after the seek (fetched before it: grid.readings:1 had 279 reach the agent after the seek to 252) is
    # left out too, and the partition is read again from that offset as after a fetch jump (:meth:`getmany`).
    # Should the offset still not come after ``INTAKE_REREADS`` reads, the record is taken in (with a warning)
    # rather than the partition held for good.

    async def takes_in(self, message: Message) -> bool:
        """Whether an agent may apply ``message`` now (else it is left out, unacked, and comes again)."""
        tp = message.tp
        if not self._assigned_once or not _is_source(tp.topic):
            return True
        if self._seeking is not None:
            await self._seeking.wait()
        generation = self.app.consumer_generation_id
        intake = self._intake.get(tp)
        if intake is None or intake[0] != generation or message.generation_id != generation:
            return False  # taken before its partition was sought in this generation: the seek brings it again
        expected = intake[1]
        if message.offset > expected and await self._read_again(tp, expected, message.offset):
            return False
        if message.offset >= expected:
            self._intake[tp] = (generation, message.offset + 1)
            self._reread.pop(tp, None)
        return True  # the next record, or one taken in before (a redelivery: the agents' stamps see to it)

    async def _read_again(self, tp: TP, expected: int, offset: int) -> bool:
        """Whether ``tp`` is (still) being read again from ``expected``, so that ``offset`` is left out."""
        now = time.monotonic()
        at, until, reads = self._reread.get(tp, (expected, 0.0, 0))
        if at == expected and now < until:
            return True  # a read from there is under way
        if at == expected and reads >= INTAKE_REREADS:
            log.warning("%s: offsets %d-%d never reached the agents after %d reads from %d: taken in past them",
                        tp, expected, offset - 1, reads, expected)  # fmt: skip
            return False
        log.warning("%s: offset %d reached the agents before %d after the seek: read again from %d", tp, offset,
                    expected, expected)  # fmt: skip
        self._reread[tp] = (expected, now + REWIND_WAIT_S, (reads if at == expected else 0) + 1)
        self._rewinds[tp] = (expected, now + REWIND_WAIT_S)
        await self._thread.seek_wait({tp: expected})
        return True

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        start = self._committed_offset[tp]
        if start is None:
            start = self._commit_from.get(tp)
        if start is None or not acked:
            return None  # assigned, not yet sought: where the partition starts is not known yet
        if any(offset < start for offset in acked):
            below = {offset for offset in acked if offset < start}
            acked[:] = [offset for offset in acked if offset >= start]
            self._acked_index[tp].difference_update(below)
        lowest = min(acked, default=None)
        gaps = self._gap[tp]
        if gaps:
            lowest = gaps.begin() if lowest is None else min(lowest, gaps.begin())
        if lowest is None or lowest > start:
            return None  # the offset at ``start`` is not applied yet
        new: int | None = super()._new_offset(tp)
        return new

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        # Recovery seeks a changelog partition to "the earliest offset - 1" (-1: nothing read, which it maps to 0);
        # while a broker is down the earliest offset of a partition it led can come back as -1, and the -2 sought
        # then crashed the worker (aiokafka: "Offset must be a positive integer"). Below 0 means from the start.
        # (None: the earliest offset could not be read at all, the partition's leader was down.)
        await super().seek_wait({tp: 0 if offset is None else max(offset, 0) for tp, offset in partitions.items()})


INTAKE_REREADS = 3  # reads of a partition from its next offset before records past it are taken in anyway
REWIND_WAIT_S = 10.0  # how long a partition sought back waits for the record it was sought to (it always comes)
BROKER_DOWN = (NodeNotReadyError, KafkaConnectionError, KafkaTimeoutError, RequestTimedOutError, NotReady)
DECLARE_RETRY_FIRST_S = 0.2  # the back-off between declaration attempts doubles from this ...
DECLARE_RETRY_MAX_S = 5.0  # ... up to this


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer

    async def _create_topic(
        self, owner: Any, client: Any, topic: str, partitions: int, replication: int, **kwargs: Any
    ) -> None:
        delay, failures = DECLARE_RETRY_FIRST_S, 0
        while True:
            try:
                await super()._create_topic(owner, client, topic, partitions, replication, **kwargs)
                return
            except BROKER_DOWN as exc:
                if owner.should_stop:
                    raise
                failures += 1
                if failures % 10 == 1:
                    log.warning("declaring topic %r: %r (attempt %d), retrying", topic, exc, failures)
            with contextlib.suppress(Exception):  # still down: the next attempt says so
                await client.force_metadata_update()  # forget a broker that went away
            await asyncio.sleep(delay)
            delay = min(delay * 2, DECLARE_RETRY_MAX_S)


TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
