"""Fixed test vectors (``vectors.json``: schema, record, the bytes Apache Avro's Java ``BinaryMessageEncoder``
wrote for it), checked without Java: the codec writes exactly those bytes and reads them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from tests.interop.avro_json import from_avro_json
from toogreen.codec import MAGIC, codec_for
from toogreen.topics import ALL_TOPICS

VECTORS: dict[str, list[dict]] = json.loads(Path(__file__).with_name("vectors.json").read_text())
CASES = [(topic, i, v) for topic, items in VECTORS.items() for i, v in enumerate(items)]
REGENERATE = "regenerate the vectors with `make interop-vectors` (needs Java)"


def test_there_are_vectors_for_every_topic():
    assert sorted(VECTORS) == sorted(t.name for t in ALL_TOPICS)


@pytest.mark.parametrize(("topic", "index", "vector"), CASES, ids=[f"{t}-{i}" for t, i, _ in CASES])
def test_codec_writes_and_reads_the_reference_bytes(topic: str, index: int, vector: dict):
    codec = codec_for(topic)
    assert codec.spec.schema_file == vector["schema_file"]
    assert codec.fingerprint.hex() == vector["fingerprint_hex"], f"{vector['schema_file']} changed: {REGENERATE}"
    # Java's canonical form of the schema is fastavro's, and its CRC-64-AVRO is the fingerprint
    assert to_parsing_canonical_form(codec.schema) == vector["schema_canonical_form"]
    assert fingerprint(vector["schema_canonical_form"], "CRC-64-AVRO") == vector["fingerprint_hex"]
    expected = bytes.fromhex(vector["bytes_hex"])
    assert expected[:2] == MAGIC and expected[2:10].hex() == vector["fingerprint_hex"]
    record = from_avro_json(codec.schema, json.dumps(vector["record"]))
    assert codec.encode(record) == expected
    assert codec.decode(expected) == record


def test_the_node_registry_fingerprint_is_the_one_standard_encoders_write():
    # the report: fastavro's fingerprint() of node_registry.avsc is 39b8ed54f87431cc, and so is Java's
    assert VECTORS["node.registry"][0]["fingerprint_hex"] == codec_for("node.registry").fingerprint.hex()
