"""The DuckDB sink: reads every topic the database mirrors, writes each batch in one transaction, and commits
the Kafka offsets only after the batch is durable (at-least-once; the writes are idempotent, so a record read
twice changes nothing). A record that cannot be decoded or validated becomes a ``dead_letters`` row keyed by
its topic/partition/offset, the same key the worker's dead letter for it carries, so it is counted once.

The sink is the single writer of the file, so it takes every partition itself (``assign``, no group join) and
keeps its position in its consumer group's committed offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from sinks.duckdb_store import Store
from sinks.rows import SIMPLE_TABLES, SINK_TOPICS, Row
from sinks.settlement import Settler
from toogreen.codec import DecodeError, dead_letter, decode
from toogreen.domain.validation import validate_grid_reading, validate_registration, validate_telemetry
from toogreen.settings import Settings
from toogreen.topics import GRID_READINGS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

log = logging.getLogger(__name__)

VALIDATORS = {
    GRID_READINGS.name: validate_grid_reading,
    NODE_TELEMETRY.name: validate_telemetry,
    NODE_REGISTRY.name: validate_registration,
}


def dead_letter_row(msg: Any, reason: str) -> Row:
    return dead_letter(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), "duckdb_sink", reason)


def rows_from_messages(messages: list[Any]) -> tuple[dict[str, list[Row]], list[Row]]:
    """Table rows and workload events from a batch of Kafka messages (bad records become dead letters)."""
    rows: dict[str, list[Row]] = defaultdict(list)
    events: list[Row] = []
    for msg in messages:
        topic = msg.topic()
        try:
            record = decode(topic, msg.value())
        except DecodeError as exc:
            rows["dead_letters"].append(dead_letter_row(msg, str(exc)))
            continue
        problems = VALIDATORS[topic](record) if topic in VALIDATORS else []
        if problems:
            rows["dead_letters"].append(dead_letter_row(msg, f"{topic}: invalid record: {'; '.join(problems)}"))
        elif topic == WORKLOAD_EVENTS.name:
            events.append({**record, "log_offset": msg.offset()})
        else:
            table, build = SIMPLE_TABLES[topic]
            rows[table].append(build(record))
    return rows, events


class DuckDBSink:
    """Consumes, writes, commits; publishes the analysts' snapshot on an interval."""

    def __init__(self, settings: Settings, store: Store, settler: Settler | None = None) -> None:
        self.settings = settings
        self.store = store
        self.settler = settler
        self._stop = threading.Event()
        self.batches = 0
        self.records = 0
        self.ready = threading.Event()
        self._last_snapshot = 0.0

    def _consumer(self) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "group.id": self.settings.storage.sink_group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        meta = consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, p)
            for topic in SINK_TOPICS
            if topic in meta.topics
            for p in meta.topics[topic].partitions
        ]
        committed = consumer.committed(partitions, timeout=10)
        consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                         for tp in committed])  # fmt: skip
        return consumer

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        consumer = self._consumer()
        self.ready.set()
        try:
            while not self._stop.is_set():
                messages = consumer.consume(
                    self.settings.storage.sink_batch_max, self.settings.storage.sink_poll_timeout_s
                )
                good = [m for m in messages if m.error() is None]
                for m in messages:
                    if (error := m.error()) is not None and error.code() != KafkaError._PARTITION_EOF:
                        log.warning("sink consume error: %s", error)
                if good:
                    self.write_and_commit(consumer, good)
                self._settle()
                self._maybe_snapshot()
        finally:
            consumer.close()

    def write_and_commit(self, consumer: Consumer, messages: list[Any]) -> None:
        rows, events = rows_from_messages(messages)
        self.store.write(rows, events)
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic(), m.partition())] = max(last.get((m.topic(), m.partition()), -1), m.offset())
        consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()], asynchronous=False)
        self.batches += 1
        self.records += len(messages)

    def _settle(self) -> None:
        if self.settler is None:
            return
        try:
            self.settler.settle_pending()
        except Exception:
            log.exception("settlement pass failed; it is retried on the next pass")

    def _maybe_snapshot(self) -> None:
        now = time.monotonic()
        if now - self._last_snapshot >= self.settings.storage.snapshot_interval_s:
            self._last_snapshot = now
            try:
                self.store.publish_snapshot(self.settings.storage.snapshot_path)
            except Exception:
                log.exception("could not publish the DuckDB snapshot")

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="duckdb-sink", daemon=True)
        thread.start()
        return thread
