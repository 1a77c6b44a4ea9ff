"""Where agents send what they produce: encoded records to topics, and dead letters with their reason.

Agents call :data:`emitter`; tests swap it for a :class:`RecordingEmitter` so an agent runs under
``agent.test_context()`` without a broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import msgspec
from faust.types import EventT

from toogreen.codec import dead_letter, encode
from toogreen.domain.records import Record
from toogreen.topics import DEAD_LETTERS

Payload = Record | Mapping[str, Any]  # a typed record, or an Avro record as a dict
_json = msgspec.json.Encoder()


def wire(record: Payload) -> dict[str, Any]:
    """The Avro codec's input for a payload: a record's wire form, a dict as it is."""
    if isinstance(record, Record):
        return record.to_wire()
    return record if isinstance(record, dict) else dict(record)


def dead_letter_record(event: EventT, stage: str, reason: str) -> dict[str, Any]:
    message = event.message
    raw = message.value if isinstance(message.value, bytes | bytearray) else repr(message.value).encode()
    key = message.key
    if key is not None and not isinstance(key, bytes | bytearray):
        key = str(key).encode()
    return dead_letter(message.topic, message.partition, message.offset, key, raw, stage, reason)


Delivery = Awaitable[Any]  # resolves once the broker has the record (acks=all), raises if it never will


class Emitter(Protocol):
    async def emit(self, topic: str, key: str, record: Payload) -> Delivery:
        """Hand ``record`` to the producer; the delivery it returns completes once the brokers acked the record."""
        ...

    async def emit_internal(self, topic: str, key: str, record: Any, partition: int | None = None) -> Awaitable[Any]:
        """To one of the worker's own topics (no Avro schema: the record's JSON wire form), on ``partition`` (None:
        the key's)."""
        ...

    async def delivered(self, pending: list[Awaitable[Any]], timeout_s: float) -> tuple[list[BaseException], int]:
        """Wait (at most ``timeout_s``) until the brokers acked every record of ``pending`` (what :meth:`emit`
        returned, changelog records); the delivery errors, and how many were not acked in time."""
        ...

    async def dead_letter(self, event: EventT, stage: str, reason: str) -> None: ...


class KafkaEmitter:
    """Sends through the Faust app's producer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def emit(self, topic: str, key: str, record: Payload) -> Delivery:
        # Handed straight to the producer's batch, not awaited until delivered: Faust flushes the producer before it
        # commits offsets, so what an event caused is sent before the event counts as processed (at-least-once);
        # the checkpoint awaits what must be durable before its outputs leave. (Faust's ``send_soon`` buffer costs
        # more per record than the send itself.)
        sent: Delivery = await self.app.producer.send(
            topic, key.encode(), encode(topic, wire(record)), None, None, None
        )
        return sent

    async def emit_internal(self, topic: str, key: str, record: Any, partition: int | None = None) -> Awaitable[Any]:
        sent: Awaitable[Any] = await self.app.producer.send(
            topic, key.encode(), _json.encode(record), partition, None, None
        )
        return sent

    async def delivered(self, pending: list[Awaitable[Any]], timeout_s: float) -> tuple[list[BaseException], int]:
        if not pending:
            return [], 0
        futures = [asyncio.ensure_future(p) for p in pending]
        done, late = await asyncio.wait(futures, timeout=timeout_s)
        failed = [asyncio.CancelledError() if f.cancelled() else f.exception() for f in done]
        return [e for e in failed if e is not None], len(late)

    async def dead_letter(self, event: EventT, stage: str, reason: str) -> None:
        record = dead_letter_record(event, stage, reason)
        await self.emit(DEAD_LETTERS.name, record["source_topic"], record)


def _done() -> Awaitable[Any]:
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


class RecordingEmitter:
    """Keeps what would have been sent, for tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.dead: list[dict[str, Any]] = []
        self.internal: list[tuple[str, str, bytes]] = []  # to the worker's own topics, as sent
        self.internal_partitions: list[tuple[str, str, int | None]] = []  # ... and the partition each was sent to
        self.deliveries = 0  # how many runs waited for their state

    async def emit(self, topic: str, key: str, record: Payload) -> Delivery:
        as_sent = wire(record)
        encode(topic, as_sent)  # what the real emitter would reject, this one rejects too
        self.sent.append((topic, key, as_sent))
        return _done()

    async def emit_internal(self, topic: str, key: str, record: Any, partition: int | None = None) -> Awaitable[Any]:
        self.internal.append((topic, key, _json.encode(record)))
        self.internal_partitions.append((topic, key, partition))
        return _done()

    async def delivered(self, pending: list[Awaitable[Any]], timeout_s: float) -> tuple[list[BaseException], int]:
        self.deliveries += 1  # nothing is in flight here: every record counts as delivered once it is sent
        return [], 0

    async def dead_letter(self, event: EventT, stage: str, reason: str) -> None:
        self.dead.append(dead_letter_record(event, stage, reason))

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [r for t, _k, r in self.sent if t == topic]
