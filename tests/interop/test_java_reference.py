"""The wire format against Apache Avro's Java implementation: Java's ``BinaryMessageEncoder`` writes records of
every topic schema for the project to decode, and Java's ``BinaryMessageDecoder`` reads what the project encodes.
Values are compared through Avro's JSON encoding, bytes byte for byte."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from tests.builders import grid_reading
from tests.interop.avro_json import from_avro_json, to_avro_json
from tests.interop.java_tool import AvroJava, lines_of
from toogreen import SCHEMA_DIR
from toogreen.codec import TopicCodec, codec_for
from toogreen.topics import ALL_TOPICS

RECORDS_PER_SCHEMA = 40
SEED = 16
VECTORS = Path(__file__).with_name("vectors.json")
BY_FILE = {t.schema_file: t for t in ALL_TOPICS}


def test_every_schema_in_schemas_is_a_topic_schema():
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.avsc")) == sorted(BY_FILE)


@pytest.fixture(scope="module")
def java_written(avro_java: AvroJava, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, bytes]]]:
    """Random records of every ``schemas/*.avsc`` as Java wrote them: schema file -> [(Avro JSON, bytes)]."""
    out = tmp_path_factory.mktemp("java") / "random.jsonl"
    avro_java.run("random", SCHEMA_DIR, RECORDS_PER_SCHEMA, SEED, out)
    written: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for line in lines_of(out):
        item = json.loads(line)
        written[item["schema"]].append((item["json"], bytes.fromhex(item["hex"])))
    return written


def test_the_project_decodes_what_java_encodes_for_every_topic(java_written):
    assert sorted(java_written) == sorted(BY_FILE)
    for schema_file, records in java_written.items():
        codec = codec_for(BY_FILE[schema_file].name)
        assert len(records) == RECORDS_PER_SCHEMA
        for avro_json, data in records:
            assert data[2:10] == codec.fingerprint, f"{schema_file}: Java's fingerprint differs from the codec's"
            assert codec.decode(data) == from_avro_json(codec.schema, avro_json)
            assert codec.encode(codec.decode(data)) == data  # and writes the same bytes as Java


def test_java_decodes_what_the_project_encodes_for_every_topic(java_written, avro_java: AvroJava, tmp_path: Path):
    for schema_file, records in java_written.items():
        codec: TopicCodec = codec_for(BY_FILE[schema_file].name)
        originals = [from_avro_json(codec.schema, avro_json) for avro_json, _ in records]
        encoded, decoded = tmp_path / f"{schema_file}.hex", tmp_path / f"{schema_file}.jsonl"
        encoded.write_text("\n".join(codec.encode(r).hex() for r in originals) + "\n")
        avro_java.run("decode", SCHEMA_DIR / schema_file, encoded, decoded)
        lines = lines_of(decoded)
        assert len(lines) == len(originals)
        for original, line in zip(originals, lines, strict=True):
            assert "error" not in json.loads(line), f"{schema_file}: Java could not decode the project's bytes: {line}"
            assert from_avro_json(codec.schema, line) == original


def test_java_rejects_the_reversed_fingerprint_the_project_used_to_write(avro_java: AvroJava, tmp_path: Path):
    codec = codec_for("node.registry")
    record = json.loads(VECTORS.read_text())["node.registry"][0]["record"]
    good = codec.encode(from_avro_json(codec.schema, json.dumps(record)))
    reversed_header = good[:2] + good[2:10][::-1] + good[10:]
    (tmp_path / "in.hex").write_text(f"{good.hex()}\n{reversed_header.hex()}\n")
    avro_java.run("decode", SCHEMA_DIR / "node_registry.avsc", tmp_path / "in.hex", tmp_path / "out.jsonl")
    ok, bad = (json.loads(line) for line in lines_of(tmp_path / "out.jsonl"))
    assert ok["node_id"] and "MissingSchemaException" in bad["error"]


def test_java_writes_the_committed_test_vectors(avro_java: AvroJava, tmp_path: Path):
    vectors = json.loads(VECTORS.read_text())
    assert sorted(vectors) == sorted(t.name for t in ALL_TOPICS)
    for topic, items in vectors.items():
        spec = next(t for t in ALL_TOPICS if t.name == topic)
        (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(v["record"]) for v in items) + "\n")
        avro_java.run("encode", SCHEMA_DIR / spec.schema_file, tmp_path / "in.jsonl", tmp_path / "out.hex")
        assert (tmp_path / "out.hex").read_text().split() == [v["bytes_hex"] for v in items], topic


def test_avro_json_helpers_round_trip():
    codec = codec_for("grid.readings")
    record = codec.decode(codec.encode(grid_reading()))
    assert from_avro_json(codec.schema, to_avro_json(codec.schema, record)) == record
