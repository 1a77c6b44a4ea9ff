"""The contract of every Faust internal the worker uses (``streams.faust_private``), each against real Faust
objects: a Faust upgrade that changes one fails here, by name."""

from __future__ import annotations

import logging

from faust.types import Message

import streams.agents as agents
from streams import faust_private
from streams.app import app, node_reservation_table, settings, zone_meta_table, zone_window_table
from streams.checkpoint import Stamped
from tests.agents.harness import clear_tables
from tests.builders import grid_reading, now_ms
from toogreen.codec import encode
from toogreen.domain.records import Hold, ZoneMeta
from toogreen.domain.windows import WindowSpec, empty_window


def test_the_table_store_is_what_the_table_reads_and_writing_it_sends_nothing(monkeypatch):
    clear_tables()
    sent: list[object] = []
    monkeypatch.setattr(zone_meta_table, "send_changelog", lambda *a, **kw: sent.append(a), raising=False)
    faust_private.table_data(zone_meta_table)["FR"] = ZoneMeta(watermark_ms=5)
    assert zone_meta_table["FR"] == ZoneMeta(watermark_ms=5) and zone_meta_table.get("FR").watermark_ms == 5
    assert "FR" in zone_meta_table and sent == []
    clear_tables()


async def test_a_changelog_record_is_queued_with_the_tables_codec_and_a_deletion_as_a_tombstone():
    holds = {"w1": Hold(vram_mb=1000, mig_profile="1g.10gb")}
    value = faust_private.send_changelog(node_reservation_table, 2, "n1", holds)
    tombstone = faust_private.send_changelog(node_reservation_table, 3, "n1", None)
    pending = node_reservation_table.send_changelog(0, "n0", holds)  # what Faust's own write would send
    for fut in (value, tombstone, pending):
        assert fut.message.channel is node_reservation_table.changelog_topic
    assert (value.message.partition, value.message.value_serializer) == (2, "toogreen.node-reservations")
    assert tombstone.message.value is None and tombstone.message.value_serializer == "raw"
    data = app.serializers.dumps_value(None, holds, serializer=value.message.value_serializer)
    assert data == b'{"w1":{"vram_mb":1000,"mig_profile":"1g.10gb","expected_end_ms":null}}'  # the JSON wire form


async def test_a_changelog_record_published_at_once_is_the_one_faust_would_queue(monkeypatch):
    published = []

    async def publish_message(fut, wait=False):
        published.append((fut, wait))

    topic = node_reservation_table.changelog_topic
    monkeypatch.setattr(topic, "publish_message", publish_message)
    holds = {"w1": Hold(vram_mb=1000)}
    value = await _PUBLISH(node_reservation_table, 2, "n1", holds)
    tombstone = await _PUBLISH(node_reservation_table, 3, "n1", None)
    queued = node_reservation_table.send_changelog(2, "n1", holds)  # what Faust's own write would queue
    assert [f for f, _w in published] == [value, tombstone] and not any(w for _f, w in published)
    for field in ("channel", "key", "value", "partition", "key_serializer", "value_serializer", "callback"):
        assert getattr(value.message, field) == getattr(queued.message, field), field
    assert tombstone.message.value is None and tombstone.message.value_serializer == "raw"


def _restored(table, value: bytes):
    """What the changelog consumer makes of a changelog message: the worker's recovery reads the table's
    changelog topic (cloned onto its queue at start) and decodes each message with its schema."""
    topic = table.changelog_topic.clone_using_queue(app.channel().queue)
    message = Message(table.changelog_topic.get_topic_name(), 0, 0, 0.0, 0, [], b'"k"', value, None)
    return topic.schema.loads_value(app, message)


_PUBLISH = faust_private.publish_changelog  # the real one (the agent tests' conftest queues instead)


def test_a_table_restores_its_typed_values_from_its_changelog_bytes():
    assert node_reservation_table.changelog_topic.value_serializer == "toogreen.node-reservations"
    assert _restored(node_reservation_table, b'{"w1":{"vram_mb":1000}}') == {"w1": Hold(vram_mb=1000)}
    no_price = grid_reading(ts_ms=1, price=None)
    window = empty_window("FR", WindowSpec("tumbling", 300_000, 300_000), 0).add(no_price)
    stamped = Stamped(window, {"grid.readings:3": 41})  # with the last reading it applied (streams/checkpoint.py)
    data = app.serializers.dumps_value(None, stamped, serializer=zone_window_table.value_serializer)
    assert b"Infinity" in data  # an empty measure's minimum
    assert _restored(zone_window_table, data) == stamped
    meta = Stamped(ZoneMeta(watermark_ms=5), {"grid.readings:3": 41})
    assert _restored(zone_meta_table, app.serializers.dumps_value(None, meta, serializer="toogreen.zone-meta")) == meta


async def test_a_stream_without_auto_ack_leaves_each_event_to_be_acked(monkeypatch):
    """The checkpoint acks a run's events itself, after its records were handed to the producer."""
    clear_tables()
    seen: list[object] = []
    real_ack = faust_private.ack

    async def ack(stream, event):
        assert stream.enable_acks is False  # Faust does not ack it behind the checkpoint's back
        seen.append(await real_ack(stream, event))

    monkeypatch.setattr(faust_private, "ack", ack)
    monkeypatch.setattr(agents, "emitter", _Quiet())
    async with agents.zone_windows.test_context() as agent:
        await agent.put(encode("grid.readings", grid_reading("FR", now_ms())), key=b"FR")
    assert seen == [True]  # acked once, by the checkpoint, and no other stream holds it
    clear_tables()


class _Quiet:
    async def emit(self, topic, key, record):
        return None

    async def emit_internal(self, topic, key, record, partition=None):
        return None

    async def delivered(self, pending, timeout_s):
        return [], 0

    async def dead_letter(self, event, stage, reason):
        return None


async def test_the_worker_consumer_waits_at_most_the_configured_fetch_wait():
    assert type(app.transport) is faust_private.Transport

    async def nothing(*_args):
        return None

    consumer = app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    thread = consumer._new_consumer_thread()
    aiokafka_consumer = thread._create_worker_consumer(app.transport)
    assert aiokafka_consumer._fetch_max_wait_ms == settings.worker.fetch_max_wait_ms == 10


async def test_a_topic_declared_while_a_broker_is_down_is_retried_until_it_is_declared(monkeypatch, caplog):
    from aiokafka.errors import NodeNotReadyError

    monkeypatch.setattr(faust_private, "DECLARE_RETRY_FIRST_S", 0.001)
    attempts: list[str] = []

    async def declare(owner, client, topic, partitions, replication, **kwargs):  # Faust's, against the cluster
        attempts.append(topic)
        if len(attempts) <= 12:
            raise NodeNotReadyError("Attempt to send a request to node which is not ready (node id 1).")

    class Client:  # the consumer's aiokafka client, whose metadata the retry refreshes
        refreshed = 0

        async def force_metadata_update(self):
            Client.refreshed += 1
            return True

    class Owner:
        should_stop = False
        log = logging.getLogger("owner")

    transport = app.transport
    monkeypatch.setattr(transport, "_really_create_topic", declare)
    with caplog.at_level(logging.WARNING, logger=faust_private.__name__):
        await transport._create_topic(Owner(), Client(), "toogreen-node-views", 1, 3)
    assert len(attempts) == 13 and Client.refreshed == 12
    assert len(caplog.records) == 2  # the first failure and the eleventh: bounded logging


async def test_recovery_seeking_below_offset_zero_seeks_the_start_of_the_changelog():
    from faust.types import TP

    async def nothing(*_args):
        return None

    consumer = app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    sought: list[dict] = []

    class Thread:  # the consumer thread, which hands the offsets to aiokafka's seek (it rejects a negative one)
        async def seek_wait(self, partitions):
            sought.append(dict(partitions))

    consumer._thread = Thread()
    a, b, c = TP("toogreen-zone-meta-changelog", 0), TP("toogreen-zone-meta-changelog", 1), TP("x", 0)
    d = TP("toogreen-zone-meta-changelog", 2)  # its earliest offset could not be read (its leader was down)
    await consumer.seek_wait({a: -2, b: 7, c: 0, d: None})
    assert sought == [{a: 0, b: 7, c: 0, d: 0}]


async def test_a_source_partition_the_group_never_committed_is_read_from_its_beginning(monkeypatch):
    from aiokafka import TopicPartition
    from faust.transport.drivers import aiokafka as faust_aiokafka

    async def nothing(*_args):
        return None

    consumer = app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    thread = consumer._new_consumer_thread()
    fresh, done, zero = TopicPartition("workload.events", 0), TopicPartition("grid.readings", 1), TopicPartition("x", 0)
    changelog = TopicPartition("toogreen-zone-meta-changelog", 0)
    never = TopicPartition("node.telemetry", 2)
    committed = {fresh: None, done: 41, zero: 0, changelog: None, never: -1}  # -1: what the broker says for none

    async def aiokafka_seek(self):  # aiokafka's: seeks the partitions committed above 0, leaves the others
        return committed

    calls: list[tuple] = []

    async def call_thread(fun, *args):
        calls.append((fun, args))

    class AIOKafka:
        def seek_to_beginning(self, *partitions):
            return partitions

    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "seek_to_committed", aiokafka_seek)
    monkeypatch.setattr(thread, "call_thread", call_thread)
    monkeypatch.setattr(thread, "_ensure_consumer", lambda: AIOKafka())
    assert await thread.seek_to_committed() == committed
    assert [args for _fun, args in calls] == [(fresh, zero, never)]  # not the changelog: recovery reads those itself


async def test_a_jump_in_a_source_partitions_offsets_is_not_acked_and_its_commit_stays_below_it(caplog):
    """Faust counts the offsets a fetch jumped over as acked (a gap: compaction, transaction markers); on a source
    topic (neither) they are records never delivered, and the partition's commit must not pass them."""
    from faust.types import TP

    async def nothing(*_args):
        return None

    consumer = app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    log, changelog = TP("workload.events", 0), TP("toogreen-zone-meta-changelog", 0)
    for tp in (log, changelog):
        consumer._committed_offset[tp] = 157  # the group's commit: the next offset to read
        consumer._acked[tp].append(157)  # read and acked ...
        with caplog.at_level(logging.WARNING, logger="streams.faust_private"):
            await consumer._add_gap(tp, 158, 181)  # ... then the fetch returned 181: 158-180 never came
        consumer._acked[tp].append(181)
    assert consumer._new_offset(log) == 158  # the commit stays below the records that never came
    assert consumer._new_offset(changelog) == 182  # Faust's own gap handling for a changelog
    assert "158-180 were skipped" in caplog.text


async def test_a_fetch_that_jumps_past_where_a_source_partition_was_read_is_sought_back_and_read_in_order(monkeypatch):
    """A fetch handed the consumer records past where it last read (a new owner got 181 after 157: 158-180 never
    came). The partition is sought back to the last record read, what was fetched past the jump is left out, and
    the records then come in order, the last one read once more (a redelivery, which every agent takes)."""
    from types import SimpleNamespace

    from faust.transport.drivers import aiokafka as faust_aiokafka
    from faust.types import TP

    async def nothing(*_args):
        return None

    consumer = app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    tp = TP("workload.events", 0)
    fetches = [[11, 15, 16], [11, 12, 13, 14, 15, 16]]  # what each fetch returns: the first jumps from 11 to 15

    async def fetched(self, timeout):
        for offset in fetches.pop(0):
            yield tp, SimpleNamespace(offset=offset)

    sought: list[dict] = []

    class Thread:
        async def seek_wait(self, partitions):
            sought.append(dict(partitions))

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", fetched)
    consumer._thread = Thread()
    consumer._read_offset[tp] = 10
    delivered: list[int] = []
    for _fetch in range(2):
        async for _tp, message in consumer.getmany(1.0):
            assert message.offset >= (consumer._read_offset[tp] or 0)  # what Faust's drain loop then accepts
            delivered.append(message.offset)
            consumer._read_offset[tp] = message.offset  # as Faust's drain loop does
    assert sought == [{tp: 11}]
    assert delivered == [11, 11, 12, 13, 14, 15, 16]


def _consumer():
    async def nothing(*_args):
        return None

    return app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )


def _message(tp, offset: int) -> Message:
    from faust.types.tuples import ConsumerMessage  # what the consumer hands the streams

    return ConsumerMessage(tp.topic, tp.partition, offset, 0.0, 0, {}, b"k", b"v", None,
                   generation_id=app.consumer_generation_id)  # fmt: skip


class _Stream:  # what Faust's Stream.ack does: the event's message acked on the app's consumer
    def __init__(self, consumer) -> None:
        self.consumer = consumer

    async def ack(self, event):
        return event.message.ack(self.consumer)


class _Event:
    def __init__(self, message: Message) -> None:
        self.message = message


async def _applied(consumer, tp, *offsets: int) -> None:
    """Acks as the checkpoint makes them, for events it applied."""
    for offset in offsets:
        message = _message(tp, offset)
        token = faust_private._APPLIED_ACK.set(True)
        try:
            assert consumer.ack(message)
        finally:
            faust_private._APPLIED_ACK.reset(token)


async def test_a_commit_never_passes_the_committed_offset_while_it_is_not_applied(monkeypatch):
    """Faust's own rule (``min(acked) - committed > 1``) commits past the committed offset C when C is not acked and
    C+1 is: a run whose state was not durable yet, followed by one that was, lost C's reading for good."""
    from faust.types import TP

    consumer = _consumer()
    tp = TP("grid.readings", 3)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    consumer._committed_offset[tp] = 10
    await _applied(consumer, tp, 11, 12)
    assert consumer._new_offset(tp) is None  # 10 is not applied: nothing is committed
    await _applied(consumer, tp, 10)
    assert consumer._new_offset(tp) == 13


async def test_acks_faust_makes_for_events_its_stream_skipped_never_count(monkeypatch):
    """A stream acks on its own every event it skips (fetched before a rebalance, or taken while the flow is stopped
    for one): never applied, they must not be committed."""
    from faust.types import TP

    consumer = _consumer()
    tp = TP("grid.readings", 1)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    consumer._commit_from[tp] = 5
    for offset in (5, 6, 7):
        message = _message(tp, offset)
        assert consumer.ack(message) is False and message.acked  # as the stream's skip path calls it
    stale = _message(tp, 8)
    stale.generation_id = (app.consumer_generation_id or 0) - 1  # fetched before the last rebalance
    token = faust_private._APPLIED_ACK.set(True)
    try:
        assert consumer.ack(stale) is False
    finally:
        faust_private._APPLIED_ACK.reset(token)
    assert consumer._new_offset(tp) is None and list(consumer._acked[tp]) == []
    await faust_private.ack(_Stream(consumer), _Event(_message(tp, 5)))  # the checkpoint's ack counts
    assert consumer._new_offset(tp) == 6


async def test_nothing_is_committed_while_where_a_partition_starts_is_unknown(monkeypatch):
    """Between a revoke and the seek after the assignment the committed offset is unknown, and Faust commits any run
    of acks, wherever it starts (the stamps then made the skipped readings look applied)."""
    from faust.types import TP

    consumer = _consumer()
    tp = TP("grid.readings", 2)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    await _applied(consumer, tp, 40, 41)
    assert consumer._new_offset(tp) is None  # unknown start
    consumer._commit_from[tp] = 38  # sought to its committed offset, 38
    assert consumer._new_offset(tp) is None  # 38 and 39 are not applied
    await _applied(consumer, tp, 38, 39)
    assert consumer._new_offset(tp) == 42


async def test_a_source_partition_is_taken_in_only_once_it_was_sought_in_the_current_generation(monkeypatch):
    """Faust hands the streams a newly assigned partition's records before it seeks the partition to its committed
    offset (a worker took in grid.readings:3 from offset 12, then the seek to 3 brought 3-11 again, which the stamps
    took for applied). Before the seek nothing is taken in; after it, everything is (a redelivery too: the stamps
    see to it); one from an earlier generation, or after the partition was revoked, is left out."""
    import faust.transport.consumer as faust_consumer
    from faust.types import TP

    consumer = _consumer()
    tp = TP("grid.readings", 3)
    changelog = TP("toogreen-zone-meta-changelog", 3)

    async def assigned(self, partitions, generation_id=0):
        return None

    async def committed(self):
        return {tp: 3}

    monkeypatch.setattr(faust_consumer.Consumer, "on_partitions_assigned", assigned)
    monkeypatch.setattr(type(consumer), "seek_to_committed", committed)
    monkeypatch.setattr(type(consumer), "assignment", lambda self: {tp, changelog})
    assert await consumer.takes_in(_message(tp, 12))  # a consumer never assigned anything (a test's) takes all
    await consumer.on_partitions_assigned({tp, changelog}, 1)
    assert not await consumer.takes_in(_message(tp, 12))  # before the seek
    assert await consumer.takes_in(_message(changelog, 40))  # a table's changelog: recovery reads it itself
    await consumer.perform_seek()
    assert [o for o in (3, 4, 5, 4, 6) if await consumer.takes_in(_message(tp, o))] == [3, 4, 5, 4, 6]
    stale = _message(tp, 7)
    stale.generation_id = (app.consumer_generation_id or 0) - 1
    assert not await consumer.takes_in(stale)
    await consumer.on_partitions_revoked({tp})
    assert not await consumer.takes_in(_message(tp, 7))  # revoked: not taken in until it is sought again


async def test_a_record_that_reaches_a_stream_while_the_seek_is_under_way_waits_for_the_seeks_intake(monkeypatch):
    """Records fetched from the sought offset can reach a stream before the seek has returned: left out then, the
    record at the sought offset never came again (a partition held 13 s until it was sought back)."""
    import asyncio

    import faust.transport.consumer as faust_consumer
    from faust.types import TP

    consumer = _consumer()
    tp = TP("toogreen-node-shares", 0)
    during: list[asyncio.Future[bool]] = []

    async def assigned(self, partitions, generation_id=0):
        return None

    async def seek_to_committed(self):
        during.append(asyncio.ensure_future(consumer.takes_in(_message(tp, 45))))  # the sought record, early
        await asyncio.sleep(0.01)
        assert not during[0].done()  # it waits for the seek
        return {tp: 45}

    monkeypatch.setattr(faust_consumer.Consumer, "on_partitions_assigned", assigned)
    monkeypatch.setattr(type(consumer), "assignment", lambda self: {tp})
    monkeypatch.setattr(type(consumer), "seek_to_committed", seek_to_committed)
    await consumer.on_partitions_assigned({tp}, 1)
    await consumer.perform_seek()
    assert await during[0]  # taken in: 45 is the sought offset


async def test_a_record_past_the_next_offset_after_the_seek_is_left_out_and_the_partition_read_again_from_it(
    monkeypatch, caplog
):
    """Records fetched before the seek can reach the agent after it (grid.readings:1: 279 came after the seek to
    252, and 252-278 only later, which the stamps then took for applied). Such a record is left out and the
    partition read again from its next offset, as after a fetch jump; once that offset came, the rest follow in
    order. Should it not come after ``INTAKE_REREADS`` reads, a record past it is taken in rather than the
    partition held for good."""
    from faust.types import TP

    consumer = _consumer()
    tp = TP("grid.readings", 1)
    consumer._assigned_once = True
    consumer._intake[tp] = (app.consumer_generation_id, 252)
    sought: list[dict] = []

    class Thread:
        async def seek_wait(self, partitions):
            sought.append(dict(partitions))

    consumer._thread = Thread()
    clock = [100.0]
    monkeypatch.setattr(faust_private.time, "monotonic", lambda: clock[0])
    taken = [o for o in (279, 280, 252, 253, 281) if await consumer.takes_in(_message(tp, o))]
    assert taken == [252, 253]  # 279, 280: left out; 281: past 254
    assert sought == [{tp: 252}, {tp: 254}] and consumer._rewinds[tp][0] == 254  # getmany drops until it comes
    for _read in range(faust_private.INTAKE_REREADS - 1):  # 254 never comes
        clock[0] += faust_private.REWIND_WAIT_S + 1
        assert not await consumer.takes_in(_message(tp, 282))
    assert len(sought) == 1 + faust_private.INTAKE_REREADS
    clock[0] += faust_private.REWIND_WAIT_S + 1
    with caplog.at_level(logging.WARNING):
        assert await consumer.takes_in(_message(tp, 282))  # taken in past 254-281, with a warning
    assert "never reached the agents" in caplog.text
    assert await consumer.takes_in(_message(tp, 283))
