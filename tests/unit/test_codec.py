"""The Avro codec: round trips, validation on encode, clear errors on decode."""

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import grid_reading
from toogreen.codec import HEADER_LEN, MAGIC, DecodeError, EncodeError, codec_for, decode, encode
from toogreen.topics import ALL_TOPICS


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
