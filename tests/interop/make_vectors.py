"""Regenerate ``tests/interop/vectors.json``: fixed records of every topic with the bytes Apache Avro's Java
``BinaryMessageEncoder`` writes for them, and the topic table of ``docs/producers.md`` with each schema's
fingerprint (``make interop-vectors``, or ``python -m tests.interop.make_vectors``; needs Java and Maven). Run it
after a schema changed: the tests say so.

A record per producer topic written by hand, plus one random record of every schema (Avro's ``RandomData``), each
with its schema (file and Parsing Canonical Form, as Java gives it), the schema's fingerprint, the record (Avro
JSON encoding) and the expected single-object bytes. ``test_vectors.py`` checks
the codec against them without Java; ``test_java_reference.py`` checks that Java still writes them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from tests.interop.avro_json import from_avro_json, to_avro_json
from tests.interop.java_tool import AvroJava, interop_jar, lines_of
from toogreen import PROJECT_ROOT, SCHEMA_DIR
from toogreen.codec import codec_for
from toogreen.topics import ALL_TOPICS, GRID_READINGS, NODE_REGISTRY, NODE_TELEMETRY, WORKLOAD_EVENTS

OUT = Path(__file__).with_name("vectors.json")
GUIDE = PROJECT_ROOT / "docs" / "producers.md"
TABLE_START, TABLE_END = "<!-- topic table: written by `make interop-vectors` -->\n", "\n<!-- end of topic table -->"
RANDOM_SEED = 7

BY_HAND: dict[str, dict[str, Any]] = {
    GRID_READINGS.name: {
        "zone": "FR", "ts_ms": 1_764_547_200_000, "carbon_intensity_gco2_per_kwh": 38.5,
        "carbon_intensity_kind": "lifecycle", "carbon_intensity_basis": "average", "renewable_pct": 31.2,
        "price": 61.37, "price_unit": "EUR/MWh", "price_market": "day_ahead", "curtailment_mw": None,
        "source": "outside-producer", "estimated": False,
    },
    NODE_REGISTRY.name: {
        "node_id": "outside-h100-1", "ts_ms": 1_764_547_200_000, "provider": "Outside GmbH", "node_type": "datacenter",
        "gpu_model": "H100", "vram_mb": 81_559, "zone": "FR", "lat": 48.8566, "lng": 2.3522, "pue": 1.2,
        "mig_capable": True, "wallet": None, "billing_account": "acct_outside", "declared_energy_source": None,
        "declared_carbon_gco2_per_kwh": None, "max_power_w": 700.0,
    },
    NODE_TELEMETRY.name: {
        "node_id": "outside-h100-1", "ts_ms": 1_764_547_201_000, "sm_util_pct": 3.0, "mem_used_mb": 512,
        "mem_total_mb": 81_559, "power_w": 71.5, "energy_j": 1_234_567.0, "temperature_c": 34.0, "sm_clock_mhz": 1980,
        "mem_clock_mhz": 2619, "mig_enabled": False, "mig_slices_total": 0, "mig_slices_free": 0, "health": "healthy",
        "source": "nvml",
    },
    WORKLOAD_EVENTS.name: {
        "event_id": "wl-outside-1:submitted", "workload_id": "wl-outside-1", "ts_ms": 1_764_547_202_000,
        "type": "submitted", "node_id": None, "progress_pct": None, "checkpoint_uri": None, "decision_id": None,
        "reason": None, "request": {
            "name": "outside-job", "workload_type": "fine_tune", "image": "ghcr.io/outside/job:1", "command": None,
            "vram_mb": 20_000, "expected_hours": 0.5, "priority": "normal", "green_only": False,
            "max_carbon_gco2_kwh": None, "budget_eur": None, "deadline_ms": None, "checkpoint_gb": None,
            "submitter": "outside",
        },
    },
}  # fmt: skip


def main() -> None:
    java = AvroJava(interop_jar())
    with tempfile.TemporaryDirectory() as tmp:
        random_out = Path(tmp) / "random.jsonl"
        java.run("random", SCHEMA_DIR, 1, RANDOM_SEED, random_out)
        randoms = {(item := json.loads(line))["schema"]: item["json"] for line in lines_of(random_out)}
        vectors: dict[str, list[dict[str, Any]]] = {}
        for spec in ALL_TOPICS:
            codec = codec_for(spec.name)
            records = [json.loads(to_avro_json(codec.schema, BY_HAND[spec.name]))] if spec.name in BY_HAND else []
            records.append(json.loads(randoms[spec.schema_file]))
            (Path(tmp) / "in.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
            java.run("encode", SCHEMA_DIR / spec.schema_file, Path(tmp) / "in.jsonl", Path(tmp) / "out.hex")
            fingerprint = java.run("fingerprint", SCHEMA_DIR / spec.schema_file).stdout.strip()
            canonical = java.run("canonical", SCHEMA_DIR / spec.schema_file).stdout.strip()
            vectors[spec.name] = [
                {"schema_file": spec.schema_file, "schema_canonical_form": canonical, "fingerprint_hex": fingerprint,
                 "record": record, "bytes_hex": hex_}
                for record, hex_ in zip(records, (Path(tmp) / "out.hex").read_text().split(), strict=True)
            ]  # fmt: skip
            for item in vectors[spec.name]:  # the records are valid for the schema as Python reads it too
                from_avro_json(codec.schema, json.dumps(item["record"]))
    OUT.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {sum(map(len, vectors.values()))} vectors of {len(vectors)} topics to {OUT}")
    write_topic_table({topic: items[0]["fingerprint_hex"] for topic, items in vectors.items()})


def write_topic_table(fingerprints: dict[str, str]) -> None:
    rows = [
        "| topic | key (UTF-8 bytes of) | value schema | fingerprint (the 8 bytes after `C3 01`, hex) |",
        "|---|---|---|---|",
        *(
            f"| `{t.name}` | `{t.key_field}` | `schemas/{t.schema_file}` | `{fingerprints[t.name]}` |"
            for t in ALL_TOPICS
        ),
    ]
    text = GUIDE.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    GUIDE.write_text(text[:start] + "\n".join(rows) + text[end:])
    print(f"wrote the topic table of {GUIDE}")


if __name__ == "__main__":
    main()
