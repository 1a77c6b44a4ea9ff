"""Schema evolution across implementations, and the BACKWARD rule that keeps it safe.

A record written with an older version of a schema and one written with a newer version (a field added with a
default) are read correctly both ways, Java writing and Python reading and the reverse. Every schema in
``schemas/`` must read what its committed baseline (``schemas/baseline/``) wrote, as Apache Avro's own
``SchemaCompatibility`` judges it: a change that breaks it fails this test, and so ``make test``.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.interop.avro_json import from_avro_json, to_avro_json
from tests.interop.java_tool import AvroJava, lines_of
from toogreen import SCHEMA_DIR
from toogreen.codec import BASELINE_DIR, DecodeError, TopicCodec
from toogreen.topics import NODE_TELEMETRY

V1: dict[str, Any] = json.loads((SCHEMA_DIR / NODE_TELEMETRY.schema_file).read_text())
V2: dict[str, Any] = {
    **V1,
    "fields": [
        *V1["fields"],
        {"name": "fan_speed_pct", "type": ["null", "double"], "default": None, "doc": "Fan speed, 0-100"},
        {"name": "driver_version", "type": "string", "default": "unknown", "doc": "GPU driver version"},
    ],
}
SAMPLE_V1 = {
    "node_id": "n-evolve", "ts_ms": 1_764_547_200_000, "sm_util_pct": 42.0, "mem_used_mb": 1024,
    "mem_total_mb": 81_559, "power_w": 320.5, "energy_j": 9.0e6, "temperature_c": 61.0, "sm_clock_mhz": 1755,
    "mem_clock_mhz": 2619, "mig_enabled": False, "mig_slices_total": 0, "mig_slices_free": 0, "health": "healthy",
    "source": "nvml",
}  # fmt: skip
SAMPLE_V2 = {**SAMPLE_V1, "fan_speed_pct": 55.0, "driver_version": "550.54.15"}


def schema_dir(tmp_path: Path, name: str, current: dict[str, Any], baseline: dict[str, Any] | None) -> Path:
    """A schema directory holding ``current`` as the telemetry schema (and ``baseline`` as its baseline)."""
    out = tmp_path / name
    (out / BASELINE_DIR).mkdir(parents=True)
    (out / NODE_TELEMETRY.schema_file).write_text(json.dumps(current))
    if baseline is not None:
        (out / BASELINE_DIR / NODE_TELEMETRY.schema_file).write_text(json.dumps(baseline))
    return out


@pytest.fixture
def versions(tmp_path: Path) -> dict[str, Path]:
    return {
        "v1": schema_dir(tmp_path, "v1", V1, None),
        "v2": schema_dir(tmp_path, "v2", V2, V1),  # the newer reader knows the version before it
    }


def java_encode(java: AvroJava, schema: Path, record: dict[str, Any], codec: TopicCodec, tmp: Path) -> bytes:
    (tmp / "in.jsonl").write_text(to_avro_json(codec.schema, record) + "\n")
    java.run("encode", schema, tmp / "in.jsonl", tmp / "out.hex")
    return bytes.fromhex((tmp / "out.hex").read_text().strip())


def java_decode(java: AvroJava, reader: Path, data: bytes, tmp: Path, *writers: Path) -> str:
    (tmp / "in.hex").write_text(data.hex() + "\n")
    java.run("decode", reader, tmp / "in.hex", tmp / "out.jsonl", *writers)
    (line,) = lines_of(tmp / "out.jsonl")
    return line


def test_java_old_and_new_writers_read_by_the_python_readers(avro_java: AvroJava, versions, tmp_path: Path):
    old_reader, new_reader = TopicCodec(NODE_TELEMETRY, versions["v1"]), TopicCodec(NODE_TELEMETRY, versions["v2"])
    file_v1, file_v2 = versions["v1"] / NODE_TELEMETRY.schema_file, versions["v2"] / NODE_TELEMETRY.schema_file
    written_v1 = java_encode(avro_java, file_v1, SAMPLE_V1, old_reader, tmp_path)
    written_v2 = java_encode(avro_java, file_v2, SAMPLE_V2, new_reader, tmp_path)
    assert written_v1[2:10] != written_v2[2:10]  # two versions, two fingerprints

    # older writer, newer reader: the added fields take their defaults
    assert new_reader.decode(written_v1) == {**SAMPLE_V1, "fan_speed_pct": None, "driver_version": "unknown"}
    # newer writer, older reader (once it knows the newer schema): the added fields are skipped
    assert new_reader.decode(written_v2) == SAMPLE_V2
    with pytest.raises(DecodeError, match="unknown writer schema fingerprint"):
        old_reader.decode(written_v2)  # a producer ahead of the pipeline is dead-lettered, saying why
    old_reader.add_writer(V2)
    assert old_reader.decode(written_v2) == SAMPLE_V1


def test_python_old_and_new_writers_read_by_the_java_readers(avro_java: AvroJava, versions, tmp_path: Path):
    old_writer, new_writer = TopicCodec(NODE_TELEMETRY, versions["v1"]), TopicCodec(NODE_TELEMETRY, versions["v2"])
    file_v1, file_v2 = versions["v1"] / NODE_TELEMETRY.schema_file, versions["v2"] / NODE_TELEMETRY.schema_file

    # older writer, newer reader: Java fills the defaults
    line = java_decode(avro_java, file_v2, old_writer.encode(SAMPLE_V1), tmp_path, file_v1)
    assert from_avro_json(new_writer.schema, line) == {**SAMPLE_V1, "fan_speed_pct": None, "driver_version": "unknown"}
    # newer writer, older reader: Java skips the added fields
    line = java_decode(avro_java, file_v1, new_writer.encode(SAMPLE_V2), tmp_path, file_v2)
    assert from_avro_json(old_writer.schema, line) == SAMPLE_V1


def compat(java: AvroJava, baseline: Path, schemas: Path) -> tuple[int, str]:
    result = java.run("compat", baseline, schemas, check=False)
    return result.returncode, result.stdout + result.stderr


def test_every_schema_reads_what_its_baseline_wrote(avro_java: AvroJava):
    baselines = sorted(p.name for p in (SCHEMA_DIR / BASELINE_DIR).glob("*.avsc"))
    missing = sorted({p.name for p in SCHEMA_DIR.glob("*.avsc")} - set(baselines))
    assert not missing, (
        f"no baseline for {missing}: a new topic's schema is its own baseline (cp it to schemas/baseline/)"
    )
    code, out = compat(avro_java, SCHEMA_DIR / BASELINE_DIR, SCHEMA_DIR)
    assert code == 0, f"a schema change breaks BACKWARD compatibility with schemas/baseline/:\n{out}"
    assert f"{len(baselines)} schemas checked, 0 incompatible" in out


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _add_required_field(s: dict[str, Any]) -> None:
    s["fields"].append({"name": "grid_operator", "type": "string", "doc": "no default: old records lack it"})


def _change_a_type(s: dict[str, Any]) -> None:
    _field(s, "carbon_intensity_gco2_per_kwh")["type"] = "string"


def _drop_an_enum_symbol(s: dict[str, Any]) -> None:
    kind = _field(s, "carbon_intensity_kind")["type"]
    kind["symbols"] = kind["symbols"][:1]
    kind.pop("default", None)


def _add_an_optional_field(s: dict[str, Any]) -> None:
    s["fields"].append({"name": "grid_operator", "type": ["null", "string"], "default": None, "doc": "TSO"})


@pytest.mark.parametrize(
    ("change", "compatible", "says"),
    [
        (_add_required_field, False, "READER_FIELD_MISSING_DEFAULT"),
        (_change_a_type, False, "TYPE_MISMATCH"),
        (_drop_an_enum_symbol, False, "MISSING_ENUM_SYMBOLS"),
        (_add_an_optional_field, True, "0 incompatible"),
    ],
    ids=["field-without-default", "type-change", "enum-symbol-removed", "field-with-default"],
)
def test_a_change_that_breaks_backward_compatibility_is_caught(
    avro_java: AvroJava, tmp_path: Path, change, compatible: bool, says: str
):
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, schemas)
    grid = json.loads((schemas / "grid_reading.avsc").read_text())
    changed = copy.deepcopy(grid)
    change(changed)
    (schemas / "grid_reading.avsc").write_text(json.dumps(changed))
    code, out = compat(avro_java, schemas / BASELINE_DIR, schemas)
    assert (code == 0) is compatible, out
    assert says in out
    if not compatible:
        assert "grid_reading.avsc: INCOMPATIBLE" in out and "1 incompatible" in out


def test_a_schema_removed_from_schemas_is_caught(avro_java: AvroJava, tmp_path: Path):
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, schemas)
    (schemas / "zone_window.avsc").unlink()
    code, out = compat(avro_java, schemas / BASELINE_DIR, schemas)
    assert code == 1 and "zone_window.avsc: INCOMPATIBLE: the schema is gone" in out
