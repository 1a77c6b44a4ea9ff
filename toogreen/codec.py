"""The one Avro codec every producer and consumer uses.

Messages use Avro single-object encoding exactly as the Avro specification and its reference implementations
(Java's ``BinaryMessageEncoder``, fastavro) write it: magic ``C3 01``, the writer schema's CRC-64-AVRO fingerprint
of its parsing canonical form as 8 little-endian bytes, then the binary body. A reader tells from the fingerprint
which schema wrote a record and resolves it against its own: schemas evolve BACKWARD by adding fields with
defaults, and each topic's reader also knows the schema's committed baseline (``schemas/baseline/``), so records
of producers still on the baseline decode. Encoding validates against the schema; decoding failures raise
:class:`DecodeError` with a reason that ends up in the dead-letter topic.
"""

from __future__ import annotations

import hashlib
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from toogreen import SCHEMA_DIR
from toogreen.domain.clock import SYSTEM_CLOCK, Clock
from toogreen.domain.records import Record
from toogreen.topics import ALL_TOPICS, BY_NAME, TopicSpec

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8
BASELINE_DIR = "baseline"  # under the schema directory: each schema as it was last released


def schema_fingerprint(schema: Any) -> bytes:
    """The 8 bytes single-object encoding puts after the magic: CRC-64-AVRO of the parsing canonical form, little
    endian (the bytes of fastavro's hex ``fingerprint()``, of Java's ``SchemaNormalization.parsingFingerprint``)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


class DecodeError(ValueError):
    """A message that is not a valid record of its topic's schema."""


class EncodeError(ValueError):
    """A record that does not match its topic's schema."""


class TopicCodec:
    """Encodes and decodes the records of one topic."""

    def __init__(self, spec: TopicSpec, schema_dir: Path = SCHEMA_DIR) -> None:
        self.spec = spec
        raw = json.loads((schema_dir / spec.schema_file).read_text())
        self.schema = fastavro.parse_schema(raw)
        self.fingerprint = schema_fingerprint(self.schema)
        # Writer schemas this reader resolves, by fingerprint: its own and the baseline's (a producer not yet on the
        # current version); ``add_writer`` adds others.
        self.writers: dict[bytes, Any] = {self.fingerprint: self.schema}
        baseline = schema_dir / BASELINE_DIR / spec.schema_file
        if baseline.exists():
            self.add_writer(json.loads(baseline.read_text()))
        self.field_names = frozenset(f["name"] for f in raw["fields"])

    def add_writer(self, raw_schema: dict[str, Any]) -> bytes:
        """Accept records written with another version of the schema; returns its fingerprint."""
        writer = fastavro.parse_schema(raw_schema)
        key = schema_fingerprint(writer)
        self.writers.setdefault(key, writer)
        return key

    def encode(self, record: dict[str, Any]) -> bytes:
        """Validate while writing: fastavro's compiled writer rejects wrong types, values outside an enum and
        missing fields without a default (checking first with ``fastavro.validation`` costs ten times more)."""
        extra = record.keys() - self.field_names
        if extra:
            raise EncodeError(f"{self.spec.name}: fields not in {self.spec.schema_file}: {', '.join(sorted(extra))}")
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(self.fingerprint)
        try:
            fastavro.schemaless_writer(out, self.schema, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{self.spec.name}: record does not match {self.spec.schema_file}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None:
            raise DecodeError(f"{self.spec.name}: empty message (tombstone)")
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError(
                f"{self.spec.name}: not Avro single-object encoding (expected magic C301, got {data[:2].hex()!r})"
            )
        writer = self.writers.get(data[2:HEADER_LEN])
        if writer is None:
            known = ", ".join(k.hex() for k in self.writers)
            raise DecodeError(
                f"{self.spec.name}: unknown writer schema fingerprint {data[2:HEADER_LEN].hex()} (this reader knows "
                f"{known}: the CRC-64-AVRO of {self.spec.schema_file}'s parsing canonical form, little endian)"
            )
        buf = io.BytesIO(data[HEADER_LEN:])
        try:
            record = fastavro.schemaless_reader(buf, writer, self.schema)
        except Exception as exc:  # fastavro raises many types on truncated or corrupt bodies
            raise DecodeError(f"{self.spec.name}: corrupt Avro body: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data) - HEADER_LEN:
            raise DecodeError(f"{self.spec.name}: {len(data) - HEADER_LEN - buf.tell()} trailing bytes after record")
        return record  # type: ignore[return-value]


@cache
def codec_for(topic: str) -> TopicCodec:
    """The codec of a topic by name."""
    try:
        return TopicCodec(BY_NAME[topic])
    except KeyError:
        known = ", ".join(t.name for t in ALL_TOPICS)
        raise KeyError(f"unknown topic {topic!r}: known topics are {known}") from None


def encode(topic: str, record: Record | dict[str, Any]) -> bytes:
    """The message bytes of ``record`` (a typed record is encoded in its wire form)."""
    return codec_for(topic).encode(record.to_wire() if isinstance(record, Record) else record)


def decode(topic: str, data: bytes | None) -> dict[str, Any]:
    return codec_for(topic).decode(data)


# A dead letter keeps at most this much of the record it is about (a record of megabytes made the dead letter
# itself too large to produce): the size and the hash still say what the whole record was.
DEAD_LETTER_RAW_MAX_BYTES = 4096


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
    stage: str,
    reason: str,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """The ``dead.letters`` record for a message that could not be decoded, validated or applied. Its key is the
    source coordinates, so the worker's and the sink's dead letters for one message are the same row (within one
    log lifetime: the sink adds the lifetime, as offsets start again in a new log)."""
    whole = bytes(raw or b"")
    return {
        "source_topic": topic,
        "source_partition": int(partition),
        "source_offset": int(offset),
        "ts_ms": clock.now_ms(),
        "stage": stage,
        "reason": reason[:2000],
        "key": None if key is None else bytes(key)[:DEAD_LETTER_RAW_MAX_BYTES],
        "raw": whole[:DEAD_LETTER_RAW_MAX_BYTES],
        "raw_size_bytes": len(whole),
        "raw_sha256": hashlib.sha256(whole).hexdigest(),
    }
