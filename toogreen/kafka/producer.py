"""Producing Avro records with confluent-kafka: validated before sending, delivery reports checked."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

from toogreen.codec import EncodeError, encode


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class RecordProducer:
    """Validates each record against its topic's schema, then produces it (batched by librdkafka)."""

    def __init__(self, bootstrap: str, **config: Any) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                # librdkafka's default partitioner, as any outside producer's: workload.events has one partition
                # (the placement log, docs/ownership.md), and the grid and node topics need only that all records of
                # a key come from one partitioner (tests/integration/test_outside_producer.py, docs/producers.md)
                "linger.ms": 5,
                # every write acknowledged by all in-sync replicas (min.insync.replicas 2 on a 3-broker cluster),
                # and a retried batch is never written twice (the broker drops it by producer id and sequence)
                "acks": "all",
                "enable.idempotence": True,
                "retry.backoff.ms": 200,
                **config,
            }
        )
        self.stats = DeliveryStats()
        self._lock = threading.Lock()
        self._failed_at_flush = 0

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        with self._lock:
            if err is None:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
                if len(self.stats.errors) < 20:
                    self.stats.errors.append(str(err))

    def send(self, topic: str, key: str, record: dict[str, Any], timestamp_ms: int | None = None) -> None:
        """Encode (raising :class:`EncodeError` on an invalid record) and produce."""
        try:
            value = encode(topic, record)
        except EncodeError:
            self.stats.rejected += 1
            raise
        self.send_raw(topic, key.encode(), value, timestamp_ms)

    def send_raw(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int | None = None) -> None:
        kwargs: dict[str, Any] = {"on_delivery": self._on_delivery}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.1)
        self.stats.sent += 1
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0, require_delivered: bool = False) -> DeliveryStats:
        """Wait until every record sent is delivered or has failed. With ``require_delivered``, a record that
        failed since the previous flush raises too (a caller about to say "published" must not say it then)."""
        with self._lock:
            failed_before = self._failed_at_flush
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise KafkaException(f"{remaining} records still undelivered after {timeout_s:.0f} s")
        with self._lock:
            failed_now, self._failed_at_flush = self.stats.failed, self.stats.failed
            last_error = self.stats.errors[-1] if self.stats.errors else "unknown"
        if require_delivered and failed_now > failed_before:
            raise KafkaException(f"{failed_now - failed_before} records not delivered: {last_error}")
        return self.stats
