"""The Avro codec: round trips, validation on encode, clear errors on decode."""

import contextlib
import io
import json
import struct

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import grid_reading
from toogreen import SCHEMA_DIR
from toogreen.codec import (
    BASELINE_DIR,
    HEADER_LEN,
    MAGIC,
    DecodeError,
    EncodeError,
    TopicCodec,
    codec_for,
    decode,
    encode,
    schema_fingerprint,
)
from toogreen.topics import ALL_TOPICS, GRID_READINGS


def test_every_topic_has_a_schema_with_documented_defaults():
    for spec in ALL_TOPICS:
        codec = codec_for(spec.name)
        assert codec.schema["type"] == "record"


def test_round_trip_fills_defaults():
    record = {"zone": "FR", "ts_ms": 1, "carbon_intensity_gco2_per_kwh": 50.5, "source": "t"}
    back = decode("grid.readings", encode("grid.readings", record))
    assert back["carbon_intensity_gco2_per_kwh"] == 50.5
    assert back["price_unit"] == "EUR/MWh" and back["renewable_pct"] is None


def test_single_object_header():
    data = encode("grid.readings", grid_reading())
    assert data[:2] == MAGIC
    assert data[2:HEADER_LEN] == codec_for("grid.readings").fingerprint


def test_encode_rejects_wrong_types():
    with pytest.raises(EncodeError, match=r"grid\.readings"):
        encode("grid.readings", {**grid_reading(), "ts_ms": "yesterday"})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "tombstone"),
        (b"", "single-object"),
        (b'{"zone": "FR"}', "single-object"),
        (MAGIC + struct.pack("<Q", 12345) + b"\x00", "unknown writer schema"),
    ],
)
def test_decode_errors_say_why(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode("grid.readings", data)


def test_truncated_and_padded_bodies_are_rejected():
    data = encode("grid.readings", grid_reading())
    with pytest.raises(DecodeError, match="corrupt"):
        decode("grid.readings", data[:-4])
    with pytest.raises(DecodeError, match="trailing"):
        decode("grid.readings", data + b"\x00\x00")


@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_decoder(blob):
    with contextlib.suppress(DecodeError):
        decode("grid.readings", blob)


def test_unknown_topic_lists_known_ones():
    with pytest.raises(KeyError, match="known topics are"):
        codec_for("no.such.topic")


def test_fingerprint_is_the_little_endian_crc64_avro_of_the_canonical_form():
    # what fastavro's fingerprint() (and Java's SchemaNormalization.parsingFingerprint) give, byte for byte
    for spec in ALL_TOPICS:
        schema = parse_schema(json.loads((SCHEMA_DIR / spec.schema_file).read_text()))
        expected = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
        assert codec_for(spec.name).fingerprint == expected


def test_a_reader_resolves_records_its_baseline_schema_wrote(tmp_path):
    current = json.loads((SCHEMA_DIR / GRID_READINGS.schema_file).read_text())
    older = {**current, "fields": [f for f in current["fields"] if f["name"] != "price_unit"]}
    (tmp_path / BASELINE_DIR).mkdir()
    (tmp_path / GRID_READINGS.schema_file).write_text(json.dumps(current))
    (tmp_path / BASELINE_DIR / GRID_READINGS.schema_file).write_text(json.dumps(older))
    body = io.BytesIO()
    record = {k: v for k, v in grid_reading().items() if k != "price_unit"}
    schemaless_writer(body, parse_schema(older), record)
    data = MAGIC + schema_fingerprint(parse_schema(older)) + body.getvalue()

    back = TopicCodec(GRID_READINGS, tmp_path).decode(data)
    assert back["price_unit"] == "EUR/MWh" and back["zone"] == record["zone"]
    # a reader that does not know that version says which fingerprints it does know
    with pytest.raises(DecodeError, match="this reader knows"):
        TopicCodec(GRID_READINGS, SCHEMA_DIR).decode(data)
