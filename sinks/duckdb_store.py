"""The DuckDB file: its tables, idempotent batched writes (Arrow, not row-at-a-time), reads for the API, and the
snapshot that analysts open while the pipeline runs.

DuckDB lets one process hold the file for writing and no other process open it meanwhile, so the writing
process (the sink, with the API beside it) publishes a consistent copy every few seconds: analysts open
``var/toogreen-snapshot.duckdb`` with any DuckDB client.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from sinks.columns import AVRO_TABLES, SCHEMA_SQL
from sinks.read_model import ReadModel
from sinks.rows import Row
from toogreen.domain.lifecycle import TERMINAL, IllegalTransition, WorkloadState, next_state

# table -> primary key columns
KEYS = {
    **{t.name: t.key for t in AVRO_TABLES},
    "nodes": ("node_id",),
    "workloads": ("workload_id",),
    "workload_events": ("event_id",),
    "routing_decisions": ("decision_id",),
    "node_commands": ("command_id",),
    "grid_forecasts": ("zone", "issued_ms"),
    "carbon_receipts": ("receipt_id",),
    "billing_records": ("billing_id",),
    "payouts": ("payout_id",),
    "dead_letters": ("lifetime_id", "source_topic", "source_partition", "source_offset"),
}
WORKLOAD_REQUEST_COLUMNS = (
    "name", "workload_type", "image", "command", "vram_mb", "expected_hours", "priority", "green_only",
    "max_carbon_gco2_kwh", "budget_eur", "deadline_ms", "checkpoint_gb", "submitter",
)  # fmt: skip
RESULT_COLUMNS = ("exit_code", "result_sha256", "result_bytes", "result_uri")  # from a node agent's last event
WORKLOAD_COLUMNS = (
    "workload_id", *WORKLOAD_REQUEST_COLUMNS, "status", "node_id", "progress_pct", "last_decision_id", "reason",
    "submitted_ms", "updated_ms", "moves", *RESULT_COLUMNS, "lifetime_id",
)  # fmt: skip

EVENT_COLUMNS = (
    "event_id", "workload_id", "ts_ms", "type", "node_id", "progress_pct", "checkpoint_uri", "decision_id", "reason",
    "checkpoint_sha256", "checkpoint_bytes", "checkpoint_s", "store_s", "transfer_s", "restore_s", "downtime_s",
    *RESULT_COLUMNS,
)  # fmt: skip


def _dedupe_last(rows: list[Row], keys: tuple[str, ...]) -> list[Row]:
    """Keep the last row per primary key: one statement may not update a row twice."""
    return list({tuple(r[k] for k in keys): r for r in rows}.values())


class Store:
    """One connection to the DuckDB file, shared by the sink (writes) and the API (a cursor per request)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = duckdb.connect(str(path))
        self.con.execute(SCHEMA_SQL)
        self._key_dead_letters_by_lifetime()
        self._write_lock = threading.Lock()
        self.read_model = ReadModel()
        self.read_model.load(self.con.cursor())

    def _key_dead_letters_by_lifetime(self) -> None:
        """A file from before log lifetimes keyed dead letters by (topic, partition, offset) alone: its rows move
        to the new key under the lifetime ``before-lifetimes``."""
        columns = {r[0] for r in self.con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = "
                                                  "'dead_letters'").fetchall()}  # fmt: skip
        if "lifetime_id" in columns:
            return
        self.con.execute("BEGIN")
        self.con.execute("ALTER TABLE dead_letters RENAME TO dead_letters_before_lifetimes")
        self.con.execute(SCHEMA_SQL)
        self.con.execute(
            "INSERT INTO dead_letters SELECT 'before-lifetimes' AS lifetime_id, * FROM dead_letters_before_lifetimes"
        )
        self.con.execute("DROP TABLE dead_letters_before_lifetimes")
        self.con.execute("COMMIT")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()

    def close(self) -> None:
        self.con.close()

    # -- writing ---------------------------------------------------------------------------------------------
    def write(self, rows_by_table: dict[str, list[Row]], workload_events: list[Row]) -> None:
        """Write one batch in one transaction; every statement is a no-op for rows already present."""
        with self._write_lock:
            cur = self.con.cursor()
            cur.begin()
            try:
                for table, rows in rows_by_table.items():
                    if rows:
                        self._write_table(cur, table, rows)
                if workload_events:
                    self._apply_workload_events(cur, workload_events)
                cur.commit()
            except BaseException:
                cur.rollback()
                raise
            finally:
                cur.close()
            self.read_model.apply(rows_by_table)

    def _write_table(self, cur: duckdb.DuckDBPyConnection, table: str, rows: list[Row]) -> None:
        if table == "nodes:registration":
            self._upsert(cur, "nodes", rows, update_when="excluded.registered_ms >= COALESCE(nodes.registered_ms, 0)")
        elif table == "nodes:telemetry":
            self._upsert(cur, "nodes", rows, update_when="excluded.last_seen_ms > COALESCE(nodes.last_seen_ms, -1)")
        elif table == "zone_windows":
            # A window's aggregate only grows: an older version of it never overwrites a newer one.
            self._upsert(cur, table, rows, update_when="excluded.count >= zone_windows.count")
        else:
            self._insert_new(cur, table, rows)

    @staticmethod
    def _register(cur: duckdb.DuckDBPyConnection, rows: list[Row]) -> list[str]:
        cur.register("sink_batch", pa.Table.from_pylist(rows))
        return list(rows[0].keys())

    def _insert_new(self, cur: duckdb.DuckDBPyConnection, table: str, rows: list[Row]) -> None:
        rows = _dedupe_last(rows, KEYS[table])
        cols = ", ".join(self._register(cur, rows))
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM sink_batch ON CONFLICT DO NOTHING")
        cur.unregister("sink_batch")

    def _upsert(self, cur: duckdb.DuckDBPyConnection, table: str, rows: list[Row], update_when: str = "") -> None:
        keys = KEYS[table]
        rows = _dedupe_last(rows, keys)
        columns = self._register(cur, rows)
        cols = ", ".join(columns)
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
        where = f" WHERE {update_when}" if update_when else ""
        cur.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM sink_batch "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}{where}"
        )
        cur.unregister("sink_batch")

    def _apply_workload_events(self, cur: duckdb.DuckDBPyConnection, events: list[Row]) -> None:
        """Workload rows follow the same state machine as the router: an illegal event is stored in
        ``workload_events`` with ``applied = false`` (the worker dead-letters it) and changes nothing."""
        ids = list(dict.fromkeys(e["event_id"] for e in events))
        seen = {r[0] for r in cur.execute("SELECT event_id FROM workload_events WHERE event_id IN ?", [ids]).fetchall()}
        wids = list({e["workload_id"] for e in events})
        cur.execute(f"SELECT {', '.join(WORKLOAD_COLUMNS)} FROM workloads WHERE workload_id IN ?", [wids])
        current: dict[str, Row] = {r[0]: dict(zip(WORKLOAD_COLUMNS, r, strict=True)) for r in cur.fetchall()}
        changed: dict[str, Row] = {}
        event_rows: list[Row] = []
        for e in events:
            if e["event_id"] in seen:
                continue
            seen.add(e["event_id"])
            row = current.get(e["workload_id"])
            try:
                state = next_state(WorkloadState(row["status"]) if row else None, e["type"])
                applied = True
            except IllegalTransition:
                applied = False
            event_rows.append(
                {k: e.get(k) for k in EVENT_COLUMNS}
                | {"applied": applied, "log_offset": e.get("log_offset"), "lifetime_id": e.get("lifetime_id")}
            )
            if not applied:
                continue
            row = _workload_after(row, e, state)
            current[e["workload_id"]] = changed[e["workload_id"]] = row
        if event_rows:
            self._insert_new(cur, "workload_events", event_rows)
        if changed:
            self._upsert(cur, "workloads", list(changed.values()))

    def begin_lifetime(self, lifetime_id: str, now_ms: int) -> int | None:
        """Record that the log now read is ``lifetime_id``. The first time, every workload still active ends as
        ``lost`` (its events, reservations and progress were in an earlier log, which is gone): returns how many,
        or None for a lifetime seen before (the sink reconnected to the same log)."""
        with self._write_lock:
            cur = self.con.cursor()
            cur.begin()
            try:
                if cur.execute("SELECT 1 FROM log_lifetimes WHERE lifetime_id = ?", [lifetime_id]).fetchone():
                    cur.rollback()
                    return None
                previous = cur.execute(
                    "SELECT lifetime_id FROM log_lifetimes ORDER BY first_seen_ms DESC LIMIT 1"
                ).fetchone()
                ended = f"the broker's log lifetime {previous[0]}" if previous else "an earlier broker's log"
                active = [s.value for s in WorkloadState if s not in TERMINAL]
                lost = cur.execute(
                    "SELECT workload_id, status FROM workloads WHERE status IN ? ORDER BY workload_id", [active]
                ).fetchall()
                if lost:
                    why = f"{ended} ended while it was active; the new log ({lifetime_id}) does not know it"
                    cur.executemany(
                        "INSERT INTO workload_events (event_id, workload_id, ts_ms, type, node_id, reason, applied, "
                        "lifetime_id) SELECT ?, workload_id, ?, 'lost', node_id, ?, true, ? FROM workloads "
                        "WHERE workload_id = ? ON CONFLICT DO NOTHING",
                        [[f"lost:{wid}:{lifetime_id}", now_ms, f"{why} (was {status})", lifetime_id, wid]
                         for wid, status in lost],
                    )  # fmt: skip
                    cur.execute(
                        "UPDATE workloads SET status = 'lost', updated_ms = ?, "
                        "reason = ? || ' (was ' || status || ')' WHERE status IN ?",
                        [now_ms, why, active],
                    )
                cur.execute("INSERT INTO log_lifetimes VALUES (?, ?, ?)", [lifetime_id, now_ms, len(lost)])
                cur.commit()
                return len(lost)
            except BaseException:
                cur.rollback()
                raise
            finally:
                cur.close()

    def execute_write(self, sql: str, params: Iterable[Any] | None = None) -> None:
        """One statement that changes rows, serialised with the batch writes."""
        with self._write_lock:
            cur = self.con.cursor()
            try:
                cur.execute(sql, list(params) if params is not None else None)
            finally:
                cur.close()
                self.read_model.touched()

    # -- reading ---------------------------------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts, on a fresh cursor (safe from any thread)."""
        cur = self.con.cursor()
        try:
            cur.execute(sql, list(params) if params is not None else None)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def publish_snapshot(self, target: Path) -> None:
        """Copy the database to ``target`` atomically (readers holding the old copy keep it)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        with self._write_lock:
            cur = self.con.cursor()
            try:
                (source,) = cur.execute("SELECT current_database()").fetchone() or ("memory",)
                cur.execute(f"ATTACH '{tmp}' AS snapshot_out")
                cur.execute(f'COPY FROM DATABASE "{source}" TO snapshot_out')
                cur.execute("DETACH snapshot_out")
            finally:
                cur.close()
        os.replace(tmp, target)


def _workload_after(row: Row | None, event: Row, state: WorkloadState) -> Row:
    new: Row = dict(row) if row else {c: None for c in WORKLOAD_COLUMNS} | {"moves": 0}
    new["workload_id"] = event["workload_id"]
    new["status"] = state.value
    new["updated_ms"] = event["ts_ms"]
    kind = event["type"]
    if kind == "submitted":
        new.update({c: event["request"].get(c) for c in WORKLOAD_REQUEST_COLUMNS})
        new["submitted_ms"] = event["ts_ms"]
    if event.get("node_id") and kind in ("routed", "started", "resumed"):
        new["node_id"] = event["node_id"]
    if event.get("progress_pct") is not None:
        new["progress_pct"] = event["progress_pct"]
    if event.get("decision_id"):
        new["last_decision_id"] = event["decision_id"]
    if event.get("reason"):
        new["reason"] = event["reason"]
    if kind == "resumed":
        new["moves"] = (new.get("moves") or 0) + 1
    if kind in ("completed", "failed"):
        new.update({c: event.get(c) for c in RESULT_COLUMNS})
    new["lifetime_id"] = event.get("lifetime_id")
    return new
