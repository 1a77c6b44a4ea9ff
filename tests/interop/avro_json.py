"""Records in Avro's JSON encoding (what the Java reference prints and reads), one per line."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro


def from_avro_json(schema: Any, text: str) -> dict[str, Any]:
    """One record from its Avro JSON encoding (unions spelled ``{"type": value}``)."""
    (record,) = list(fastavro.json_reader(io.StringIO(text), schema))
    return record


def to_avro_json(schema: Any, record: dict[str, Any]) -> str:
    out = io.StringIO()
    fastavro.json_writer(out, schema, [record])
    return json.dumps(json.loads(out.getvalue()))  # one line
