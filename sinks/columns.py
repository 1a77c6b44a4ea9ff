"""The columns of the DuckDB tables, written once: the API's response models are derived from them here.

Tables whose rows are a topic's Avro record (``grid_readings``, ``zone_windows``) take their columns from the
``.avsc``: a field added to the schema (with a default, as schemas evolve) becomes a column (``ALTER TABLE ... ADD
COLUMN IF NOT EXISTS`` on files written before) and a field of the API's answer, with nothing else to edit. The
other tables are written in ``schema.sql``; :func:`table_model` reads their columns from that DDL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, create_model

from toogreen import SCHEMA_DIR
from toogreen.topics import GRID_READINGS, ZONE_WINDOWS, TopicSpec

# Avro primitive -> (DuckDB type, Python type)
_PRIMITIVES: dict[str, tuple[str, type]] = {
    "string": ("VARCHAR", str),
    "long": ("BIGINT", int),
    "int": ("INTEGER", int),
    "double": ("DOUBLE", float),
    "float": ("DOUBLE", float),
    "boolean": ("BOOLEAN", bool),
    "bytes": ("BLOB", bytes),
}


@dataclass(frozen=True)
class AvroField:
    """One field of an Avro record, as a column and as a model field."""

    name: str
    duckdb_type: str
    python_type: Any
    nullable: bool
    doc: str | None


def _field(raw: dict[str, Any]) -> AvroField:
    avro_type = raw["type"]
    nullable = False
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        nullable = len(branches) < len(avro_type)
        if len(branches) != 1:
            raise ValueError(f"field {raw['name']}: only [null, T] unions map to a column")
        avro_type = branches[0]
    py: type
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        duck, py = "VARCHAR", str
    elif isinstance(avro_type, str) and avro_type in _PRIMITIVES:
        duck, py = _PRIMITIVES[avro_type]
    else:
        raise ValueError(f"field {raw['name']}: type {avro_type!r} does not map to one column")
    return AvroField(raw["name"], duck, py | None if nullable else py, nullable, raw.get("doc"))


@cache
def avro_fields(schema_file: str) -> tuple[AvroField, ...]:
    """The fields of an Avro record schema under ``schemas/``, in order."""
    raw = json.loads((SCHEMA_DIR / schema_file).read_text())
    return tuple(_field(f) for f in raw["fields"])


@dataclass(frozen=True)
class AvroTable:
    """A DuckDB table holding one topic's records, plus the columns the sink derives (``extra``)."""

    name: str
    topic: TopicSpec
    key: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type

    @property
    def fields(self) -> tuple[AvroField, ...]:
        return avro_fields(self.topic.schema_file)

    @property
    def record_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def ddl(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` and an ``ADD COLUMN IF NOT EXISTS`` per column (older files)."""
        cols = [(f.name, f.duckdb_type) for f in self.fields] + list(self.extra.items())
        body = ",\n    ".join(f"{name} {kind}{' NOT NULL' if name in self.key else ''}" for name, kind in cols)
        create = f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body},\n    PRIMARY KEY ({', '.join(self.key)})\n);"
        alters = [
            f"ALTER TABLE {self.name} ADD COLUMN IF NOT EXISTS {name} {kind};"
            for name, kind in cols
            if name not in self.key
        ]
        return "\n".join([create, *alters])

    def model(self, name: str, doc: str) -> type[BaseModel]:
        """A pydantic model with one field per record field (extra columns left out)."""
        definitions: dict[str, Any] = {
            f.name: (f.python_type, None) if f.nullable else (f.python_type, ...) for f in self.fields
        }
        return create_model(name, __doc__=doc, **definitions)


GRID_READINGS_TABLE = AvroTable("grid_readings", GRID_READINGS, ("zone", "ts_ms", "source"), {"ts": "TIMESTAMPTZ"})
ZONE_WINDOWS_TABLE = AvroTable(
    "zone_windows", ZONE_WINDOWS, ("zone", "kind", "window_start_ms"), {"window_start": "TIMESTAMPTZ"}
)
AVRO_TABLES: tuple[AvroTable, ...] = (GRID_READINGS_TABLE, ZONE_WINDOWS_TABLE)


def avro_tables_ddl() -> str:
    return "\n".join(t.ddl() for t in AVRO_TABLES)


SCHEMA_SQL = (Path(__file__).with_name("schema.sql")).read_text() + "\n" + avro_tables_ddl()

_DUCKDB_PYTHON: dict[str, Any] = {
    "VARCHAR": str,
    "BIGINT": int,
    "INTEGER": int,
    "DOUBLE": float,
    "BOOLEAN": bool,
    "JSON": Any,
    "BLOB": bytes,
    "TIMESTAMP WITH TIME ZONE": datetime,
}


@cache
def table_columns(table: str) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) of a table as ``SCHEMA_SQL`` creates it, in order."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(SCHEMA_SQL)
        return tuple((r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall())
    finally:
        con.close()


def table_model(
    table: str, name: str, doc: str, exclude: tuple[str, ...] = (), base: type[BaseModel] | None = None
) -> type[BaseModel]:
    """A pydantic model with one optional field per column of ``table`` (JSON columns as parsed JSON)."""
    definitions: dict[str, Any] = {
        column: (_DUCKDB_PYTHON[kind] | None, None) for column, kind in table_columns(table) if column not in exclude
    }
    return create_model(name, __doc__=doc, __base__=base, **definitions)
