"""The DuckDB sink: reads every topic the database mirrors, writes each batch in one transaction, and commits
the Kafka offsets only after the batch is durable (at-least-once; the writes are idempotent, so a record read
twice changes nothing). A record that cannot be decoded or validated becomes a ``dead_letters`` row keyed by
its log lifetime and topic/partition/offset, the same key the worker's dead letter for it carries, so it is
counted once.

The sink is the single writer of the file, so it takes every partition itself (``assign``, no group join) and
keeps its position in its consumer group's committed offsets.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from sinks.duckdb_store import Store
from sinks.rows import SIMPLE_TABLES, SINK_TOPICS, Row
from sinks.settlement import Settler
from toogreen.codec import DecodeError, dead_letter, decode
from toogreen.domain.forecast import Forecast, ForecastError
from toogreen.domain.validation import validate_grid_reading, validate_registration, validate_telemetry
from toogreen.settings import Settings
from toogreen.topics import GRID_FORECASTS, GRID_READINGS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

log = logging.getLogger(__name__)


def validate_forecast(record: Row) -> list[str]:
    try:
        Forecast.from_record(record)
    except ForecastError as exc:
        return [str(exc)]
    return []


VALIDATORS = {
    GRID_FORECASTS.name: validate_forecast,
    GRID_READINGS.name: validate_grid_reading,
    NODE_TELEMETRY.name: validate_telemetry,
    NODE_REGISTRY.name: validate_registration,
}


def dead_letter_row(msg: Any, reason: str) -> Row:
    return dead_letter(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), "duckdb_sink", reason)


UNKNOWN_LIFETIME = "unknown"


def rows_from_messages(
    messages: list[Any], lifetime_id: str = UNKNOWN_LIFETIME
) -> tuple[dict[str, list[Row]], list[Row]]:
    """Table rows and workload events from a batch of Kafka messages read in the log lifetime ``lifetime_id``
    (bad records become dead letters, keyed by that lifetime and their offset)."""
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
            events.append({**record, "log_offset": msg.offset(), "lifetime_id": lifetime_id})
        else:
            table, build = SIMPLE_TABLES[topic]
            rows[table].append(build(record))
    for row in rows.get("dead_letters", ()):
        row["lifetime_id"] = lifetime_id
    return rows, events


def _lag(consumer: Consumer) -> int | None:
    """Records between the consumer's positions and the high watermarks it last saw (no request to the broker)."""
    lag, known = 0, False
    for tp in consumer.position(consumer.assignment()):
        _low, high = consumer.get_watermark_offsets(tp, cached=True)
        if tp.offset >= 0 and high >= 0:
            lag, known = lag + max(0, high - tp.offset), True
    return lag if known else None


class BrokerUnavailable(RuntimeError):
    """The broker does not answer: wait for it, this is not the sink failing."""


def die_loudly(error: BaseException) -> None:
    """The sink cannot keep going: end its process (the API beside it would serve ever staler data)."""
    log.critical("the DuckDB sink failed for good (%s): ending this process so that it is restarted", error)
    logging.shutdown()
    os._exit(70)


class DuckDBSink:
    """Consumes, writes, commits; publishes the analysts' snapshot on an interval.

    The thread restarts the consuming loop with back-off when it fails; after ``sink_max_failures`` failures in a
    row with no batch written between them it calls ``on_fatal`` (by default: the process ends, loudly). A broker
    that does not answer is waited for, not counted as a failure. Every batch is checked against the broker's log
    lifetime: a new lifetime is recorded (and reconciled, see :meth:`Store.begin_lifetime`) before anything read from
    it is written.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        settler: Settler | None = None,
        on_fatal: Callable[[BaseException], None] = die_loudly,
    ) -> None:
        self.settings = settings
        self.store = store
        self.settler = settler
        self.on_fatal = on_fatal
        self._stop = threading.Event()
        self.batches = 0
        self.records = 0
        self.ready = threading.Event()
        self._last_snapshot = 0.0
        self._thread: threading.Thread | None = None
        # what a health check reads
        self.lifetime_id: str | None = None
        self.failures_in_a_row = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.last_batch_ms: int | None = None
        self.broker_reachable = False
        self.lag_records: int | None = None  # records in the log the sink has not read yet

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
        try:
            meta = consumer.list_topics(timeout=10)
            if missing := [t for t in SINK_TOPICS if t not in meta.topics]:
                raise KafkaException(f"topics not created yet: {', '.join(missing)}")
            partitions = [
                TopicPartition(topic, p)
                for topic in SINK_TOPICS
                if topic in meta.topics
                for p in meta.topics[topic].partitions
            ]
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            consumer.close()
            raise BrokerUnavailable(str(exc)) from exc
        consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                         for tp in committed])  # fmt: skip
        return consumer

    def _lifetime_now(self, consumer: Consumer) -> str:
        try:
            cluster_id = consumer.list_topics(timeout=5).cluster_id
        except KafkaException as exc:
            raise BrokerUnavailable(str(exc)) from exc
        if not cluster_id:
            raise BrokerUnavailable("the broker reports no cluster id")
        return str(cluster_id)

    def _enter_lifetime(self, consumer: Consumer, lifetime_id: str) -> None:
        lost = self.store.begin_lifetime(lifetime_id, int(time.time() * 1000))
        if lost is not None:
            log.warning("new broker log lifetime %s (was %s): %d active workloads ended as lost",
                        lifetime_id, self.lifetime_id, lost)  # fmt: skip
            # Nothing of a lifetime first seen now was written yet, so the whole log is read. Offsets the group has
            # committed in it are not ours to trust: a commit of the old log's offsets, retried until a broker
            # answered, lands in the new log and would skip its first records.
            consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in consumer.assignment()])
        self.lifetime_id = lifetime_id

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Consume until stopped: the loop restarts with back-off when it fails."""
        sup = self.settings.supervision
        backoff = sup.restart_backoff_min_s
        while not self._stop.is_set():
            try:
                self._consume_until_stopped_or_moved()
                backoff = sup.restart_backoff_min_s
            except BrokerUnavailable as exc:
                if self.broker_reachable:
                    log.warning("sink: the broker does not answer (%s); waiting for it", exc)
                self.broker_reachable = False
                self._stop.wait(min(backoff, 1.0))
            except Exception as exc:
                self.failures_in_a_row += 1
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.failures_in_a_row >= sup.sink_max_failures:
                    self.on_fatal(exc)
                    return
                log.exception("sink failed (%d in a row); restarting in %.1f s", self.failures_in_a_row, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, sup.restart_backoff_max_s)

    def _consume_until_stopped_or_moved(self) -> None:
        """One consumer from the committed offsets; returns when stopped or when the broker's log was replaced."""
        consumer = self._consumer()
        try:
            lifetime = self._lifetime_now(consumer)
            self.broker_reachable = True
            self._enter_lifetime(consumer, lifetime)
            self.ready.set()
            while not self._stop.is_set():
                messages = consumer.consume(
                    self.settings.storage.sink_batch_max, self.settings.storage.sink_poll_timeout_s
                )
                good = [m for m in messages if m.error() is None]
                for m in messages:
                    if (error := m.error()) is not None and error.code() != KafkaError._PARTITION_EOF:
                        log.warning("sink consume error: %s", error)
                # Checked after reading: if the lifetime is still the one checked before, no newer broker served
                # this batch (lifetimes only move on); if it moved, the batch is not written under the old one.
                now = self._lifetime_now(consumer) if good else lifetime
                if now != lifetime:
                    return
                if good:
                    self.write_and_commit(consumer, good)
                    self.failures_in_a_row = 0
                self.lag_records = _lag(consumer)
                self._settle()
                self._maybe_snapshot()
        finally:
            consumer.close()

    def write_and_commit(self, consumer: Consumer, messages: list[Any]) -> None:
        rows, events = rows_from_messages(messages, self.lifetime_id or UNKNOWN_LIFETIME)
        self.store.write(rows, events)
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic(), m.partition())] = max(last.get((m.topic(), m.partition()), -1), m.offset())
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()], asynchronous=False)
        except KafkaException as exc:  # written already: read again from the last commit, which changes nothing
            raise BrokerUnavailable(f"could not commit offsets: {exc}") from exc
        self.batches += 1
        self.records += len(messages)
        self.last_batch_ms = int(time.time() * 1000)

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
        self._thread = threading.Thread(target=self.run, name="duckdb-sink", daemon=True)
        self._thread.start()
        return self._thread
