"""Sink columns and API models derived from one definition (the Avro schema, or schema.sql)."""

import duckdb

from api.responses import WorkloadRow, ZoneWindow
from sinks.columns import AVRO_TABLES, ZONE_WINDOWS_TABLE, avro_fields, table_columns


def test_avro_tables_have_a_column_per_schema_field_and_the_sink_extras():
    for table in AVRO_TABLES:
        columns = [c for c, _ in table_columns(table.name)]
        assert columns == [f.name for f in table.fields] + list(table.extra)


def test_the_api_window_model_is_the_schema():
    assert list(ZoneWindow.model_fields) == [f.name for f in avro_fields("zone_window.avsc")]
    assert {c for c, _ in table_columns("workloads")} == set(WorkloadRow.model_fields)


def test_a_file_from_before_gains_a_new_schema_field_as_a_column(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("CREATE TABLE zone_windows (zone VARCHAR, kind VARCHAR, window_start_ms BIGINT, "
                "PRIMARY KEY (zone, kind, window_start_ms))")  # fmt: skip
    con.execute(ZONE_WINDOWS_TABLE.ddl())
    names = [r[0] for r in con.execute("DESCRIBE zone_windows").fetchall()]
    assert "surplus_strength" in names and "window_start" in names
