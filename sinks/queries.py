"""The read queries the API runs against the tables of ``schema.sql``, each by name, with the scope of who asks.

A :class:`Scope` says whose rows a caller may see: everything (admin), the workloads one developer submitted, or
the nodes one provider registered and the workloads that ran on them. Every query that lists workloads, receipts,
bills or decisions takes one and filters in SQL, so what a caller may not see never leaves the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from sinks.duckdb_store import Store

ACTIVE_STATES = ("routed", "running", "checkpointed", "migrating")


@dataclass(frozen=True)
class Scope:
    """Whose rows a query returns. All None: everyone's."""

    submitter: str | None = None  # a developer: the workloads it submitted
    provider: str | None = None  # a provider: its nodes and the workloads that ran on them
    node_id: str | None = None  # a node agent: its own node

    @property
    def everything(self) -> bool:
        return self.submitter is None and self.provider is None and self.node_id is None


EVERYTHING = Scope()


def _provider_nodes_sql() -> str:
    return "SELECT node_id FROM nodes WHERE provider = ?"


def visible_workloads(scope: Scope, column: str = "workload_id") -> tuple[str, list[Any]]:
    """A SQL predicate on ``column`` (a workload id) true for the workloads ``scope`` may see."""
    if scope.everything:
        return "TRUE", []
    if scope.submitter is not None:
        return (
            f"{column} IN (SELECT workload_id FROM workloads WHERE submitter = ? "
            f"UNION ALL SELECT workload_id FROM api_submissions WHERE submitter = ?)",
            [scope.submitter, scope.submitter],
        )
    if scope.provider is not None:
        nodes = _provider_nodes_sql()
        return (
            f"{column} IN (SELECT workload_id FROM workload_events WHERE node_id IN ({nodes}) "
            f"UNION ALL SELECT workload_id FROM workloads WHERE node_id IN ({nodes}))",
            [scope.provider, scope.provider],
        )
    return (
        f"{column} IN (SELECT workload_id FROM workload_events WHERE node_id = ? "
        f"UNION ALL SELECT workload_id FROM workloads WHERE node_id = ?)",
        [scope.node_id, scope.node_id],
    )


def visible_nodes(scope: Scope, column: str = "node_id") -> tuple[str, list[Any]]:
    """A SQL predicate on ``column`` (a node id) true for the nodes ``scope`` may see."""
    if scope.everything:
        return "TRUE", []
    if scope.provider is not None:
        return f"{column} IN ({_provider_nodes_sql()})", [scope.provider]
    if scope.node_id is not None:
        return f"{column} = ?", [scope.node_id]
    return "FALSE", []


# -- health and dashboard -----------------------------------------------------------------------------------------
def table_counts(store: Store) -> dict[str, int]:
    return store.query(
        "SELECT (SELECT count(*) FROM grid_readings) AS grid_readings, "
        "(SELECT count(*) FROM nodes) AS nodes, (SELECT count(*) FROM workloads) AS workloads"
    )[0]


def workloads_by_status(store: Store, scope: Scope) -> dict[str, int]:
    where, params = visible_workloads(scope)
    rows = store.query(
        f"SELECT status, count(*) AS n FROM workloads WHERE {where} GROUP BY status ORDER BY status", params
    )
    return {r["status"]: r["n"] for r in rows}


def count_nodes(store: Store, scope: Scope) -> int:
    where, params = visible_nodes(scope)
    return store.query(f"SELECT count(*) AS n FROM nodes WHERE {where}", params)[0]["n"]


def count_decisions(store: Store, scope: Scope) -> int:
    where, params = visible_workloads(scope)
    return store.query(f"SELECT count(*) AS n FROM routing_decisions WHERE {where}", params)[0]["n"]


def count_dead_letters(store: Store) -> int:
    return store.query("SELECT count(*) AS n FROM dead_letters")[0]["n"]


# -- zones ---------------------------------------------------------------------------------------------------------
LATEST_WINDOWS_SQL = """
SELECT * EXCLUDE (window_start) FROM zone_windows WHERE kind = ?
QUALIFY row_number() OVER (PARTITION BY zone ORDER BY window_start_ms DESC) = 1
"""
LATEST_READINGS_SQL = """
SELECT * EXCLUDE (ts) FROM grid_readings
QUALIFY row_number() OVER (PARTITION BY zone ORDER BY ts_ms DESC) = 1
"""


def latest_windows(store: Store, kind: str) -> dict[str, dict[str, Any]]:
    """Each zone's newest window of ``kind`` (tumbling or hopping), by zone: the sink's read model."""
    return store.read_model.latest_windows(kind)


def latest_readings(store: Store) -> dict[str, dict[str, Any]]:
    """Each zone's newest reading, by zone: the sink's read model."""
    return store.read_model.latest_readings()


def scan_latest_windows(store: Store, kind: str) -> dict[str, dict[str, Any]]:
    """As :func:`latest_windows`, scanning the table (the read model's check)."""
    return {r["zone"]: r for r in store.query(LATEST_WINDOWS_SQL, [kind])}


def scan_latest_readings(store: Store) -> dict[str, dict[str, Any]]:
    return {r["zone"]: r for r in store.query(LATEST_READINGS_SQL)}


def latest_reading(store: Store, zone: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * EXCLUDE (ts) FROM grid_readings WHERE zone = ? ORDER BY ts_ms DESC LIMIT 1", [zone])
    return rows[0] if rows else None


def zone_history(store: Store, zone: str, kind: str, limit: int) -> list[dict[str, Any]]:
    """A zone's newest ``limit`` windows of ``kind``, oldest first."""
    rows = store.query(
        "SELECT * EXCLUDE (window_start) FROM zone_windows WHERE zone = ? AND kind = ? "
        "ORDER BY window_start_ms DESC LIMIT ?",
        [zone, kind, limit],
    )
    return rows[::-1]


# -- nodes ---------------------------------------------------------------------------------------------------------
def nodes(store: Store, scope: Scope = EVERYTHING, node_id: str | None = None) -> list[dict[str, Any]]:
    where, params = visible_nodes(scope)
    if node_id is not None:
        where, params = f"{where} AND node_id = ?", [*params, node_id]
    return store.query(f"SELECT * FROM nodes WHERE {where} ORDER BY node_id", params)


def active_holds(store: Store) -> list[dict[str, Any]]:
    """The VRAM (and MIG slice) each active workload holds on its node."""
    return store.query(
        "SELECT w.workload_id, w.node_id, w.vram_mb, d.mig_profile FROM workloads w "
        "LEFT JOIN routing_decisions d ON d.decision_id = w.last_decision_id WHERE w.status IN ?",
        [list(ACTIVE_STATES)],
    )


# -- workloads -----------------------------------------------------------------------------------------------------
def list_workloads(store: Store, scope: Scope, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    where, params = visible_workloads(scope)
    if status:
        where, params = f"{where} AND status = ?", [*params, status]
    return store.query(
        f"SELECT * FROM workloads WHERE {where} ORDER BY submitted_ms DESC, workload_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )


def workload(store: Store, scope: Scope, workload_id: str) -> dict[str, Any] | None:
    where, params = visible_workloads(scope)
    rows = store.query(f"SELECT * FROM workloads WHERE workload_id = ? AND {where}", [workload_id, *params])
    return rows[0] if rows else None


def workload_decisions(store: Store, workload_id: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT * FROM routing_decisions WHERE workload_id = ? ORDER BY ts_ms, decision_id", [workload_id]
    )


def applied_workload_events(store: Store, workload_id: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT * FROM workload_events WHERE workload_id = ? AND applied ORDER BY log_offset, ts_ms", [workload_id]
    )


def receipt_id_of(store: Store, workload_id: str) -> str | None:
    rows = store.query("SELECT receipt_id FROM carbon_receipts WHERE workload_id = ?", [workload_id])
    return rows[0]["receipt_id"] if rows else None


def workload_billing(store: Store, workload_id: str) -> list[dict[str, Any]]:
    return store.query("SELECT * EXCLUDE (metering_ids) FROM billing_records WHERE workload_id = ?", [workload_id])


def running_node(store: Store, node_id: str) -> dict[str, Any] | None:
    """What a live meter needs of the node a workload runs on, and nothing else of it: its current power draw and
    the carbon intensity and grid price where it is now (a recycler's declared source, else its zone's newest
    tumbling window, times the node's PUE, as routing counts it)."""
    rows = store.query(
        "SELECT node_id, zone, node_type, pue, declared_carbon_gco2_per_kwh, power_w, last_seen_ms FROM nodes "
        "WHERE node_id = ?",
        [node_id],
    )
    if not rows:
        return None
    node = rows[0]
    window = latest_windows(store, "tumbling").get(node["zone"])
    pue = node["pue"] or 1.0
    if node["node_type"] == "recycler" and node["declared_carbon_gco2_per_kwh"] is not None:
        carbon = node["declared_carbon_gco2_per_kwh"] * pue
    else:
        carbon = window["carbon_mean"] * pue if window and window["carbon_mean"] is not None else None
    return {
        "node_id": node["node_id"],
        "zone": node["zone"],
        "power_w": node["power_w"],
        "telemetry_ms": node["last_seen_ms"],
        "carbon_gco2_per_kwh": carbon,
        "grid_price_eur_per_mwh": window["price_mean"] if window else None,
    }


# -- submissions the API accepted ----------------------------------------------------------------------------------
def submission(store: Store, workload_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM api_submissions WHERE workload_id = ?", [workload_id])
    return rows[0] if rows else None


def submission_by_key(store: Store, submitter: str, idempotency_key: str) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT * FROM api_submissions WHERE submitter = ? AND idempotency_key = ?", [submitter, idempotency_key]
    )
    return rows[0] if rows else None


# -- receipts, billing, sustainability -----------------------------------------------------------------------------
def receipt(store: Store, scope: Scope, receipt_id: str) -> dict[str, Any] | None:
    where, params = visible_workloads(scope)
    rows = store.query(
        f"SELECT * EXCLUDE (receipt_hash) FROM carbon_receipts WHERE receipt_id = ? AND {where}",
        [receipt_id, *params],
    )
    return rows[0] if rows else None


def _billing_scope(scope: Scope) -> tuple[str, list[Any]]:
    """A developer's bills are its workloads'; a provider's are those of its nodes (its payouts)."""
    if scope.submitter is not None or scope.everything:
        return visible_workloads(scope, "b.workload_id")
    return visible_nodes(scope, "b.node_id")


def billing_records(store: Store, scope: Scope, workload_id: str | None, limit: int) -> list[dict[str, Any]]:
    where, params = _billing_scope(scope)
    if workload_id:
        where, params = f"{where} AND b.workload_id = ?", [*params, workload_id]
    return store.query(
        "SELECT b.* EXCLUDE (metering_ids), p.status AS payout_status, p.rail AS payout_rail, "
        "p.lamports AS payout_lamports, p.reference AS payout_reference, p.reason AS payout_reason "
        "FROM billing_records b LEFT JOIN payouts p ON p.payout_id = b.billing_id || ':solana' "
        f"WHERE {where} ORDER BY b.ts_ms DESC LIMIT ?",
        [*params, limit],
    )


def billing_totals(store: Store, scope: Scope) -> dict[str, Any]:
    where, params = _billing_scope(scope)
    return store.query(
        "SELECT count(*) AS records, coalesce(sum(gpu_hours), 0) AS gpu_hours, coalesce(sum(kwh), 0) AS kwh, "
        "coalesce(sum(charge), 0) AS charge, coalesce(sum(fee), 0) AS fee, coalesce(sum(payout), 0) AS payout "
        f"FROM billing_records b WHERE {where}",
        params,
    )[0]


def sustainability_totals(store: Store, scope: Scope) -> dict[str, Any]:
    where, params = visible_workloads(scope)
    return store.query(
        "SELECT count(*) AS receipts, coalesce(sum(kwh), 0) AS kwh, coalesce(sum(gco2_actual), 0) AS gco2_actual, "
        "coalesce(sum(gco2_baseline), 0) AS gco2_baseline, coalesce(sum(gco2_saved), 0) AS gco2_saved, "
        f"sum(gco2_market_based) AS gco2_market_based FROM carbon_receipts WHERE {where}",
        params,
    )[0]


_SUSTAINABILITY_GROUPS = {"zone": "iv.zone", "provider_type": "n.node_type"}


def sustainability_by(store: Store, scope: Scope, group: str, baseline_gco2_per_kwh: float) -> list[dict[str, Any]]:
    """Energy and emissions of the receipts' intervals, by zone or by provider type, against the baseline."""
    key = _SUSTAINABILITY_GROUPS[group]
    where, params = visible_workloads(scope, "r.workload_id")
    return store.query(
        f"""
        WITH iv AS (
          SELECT r.workload_id, unnest(from_json(r.intervals,
            '[{{"node_id":"VARCHAR","zone":"VARCHAR","kwh":"DOUBLE","gco2":"DOUBLE"}}]'), recursive := true)
          FROM carbon_receipts r WHERE {where})
        SELECT {key} AS key, sum(iv.kwh) AS kwh, sum(iv.gco2) AS gco2_actual, sum(iv.kwh) * ? AS gco2_baseline
        FROM iv LEFT JOIN nodes n USING (node_id) GROUP BY ALL ORDER BY 1
        """,
        [*params, baseline_gco2_per_kwh],
    )


# -- decisions and dead letters ------------------------------------------------------------------------------------
def decisions(
    store: Store, scope: Scope, workload_id: str | None, kind: str | None, limit: int
) -> list[dict[str, Any]]:
    where, params = visible_workloads(scope)
    if workload_id:
        where, params = f"{where} AND workload_id = ?", [*params, workload_id]
    if kind:
        where, params = f"{where} AND type = ?", [*params, kind]
    return store.query(f"SELECT * FROM routing_decisions WHERE {where} ORDER BY ts_ms DESC LIMIT ?", [*params, limit])


def dead_letters(store: Store, limit: int) -> list[dict[str, Any]]:
    return store.query(
        "SELECT source_topic, source_partition, source_offset, ts_ms, stage, reason, "
        "octet_length(raw) AS raw_bytes FROM dead_letters ORDER BY ts_ms DESC LIMIT ?",
        [limit],
    )


# -- tokens --------------------------------------------------------------------------------------------------------
def token_by_hash(store: Store, token_sha256: str) -> dict[str, Any] | None:
    rows = store.query("SELECT role, subject FROM api_tokens WHERE token_sha256 = ?", [token_sha256])
    return rows[0] if rows else None


def insert_token(store: Store, token_sha256: str, role: str, subject: str, created_ms: int, created_by: str) -> None:
    store.execute_write(
        "INSERT INTO api_tokens (token_sha256, role, subject, created_ms, created_by) VALUES (?, ?, ?, ?, ?)",
        [token_sha256, role, subject, created_ms, created_by],
    )


class SubmissionKeyTaken(Exception):
    """Another submission with the same submitter and Idempotency-Key was stored first."""


def insert_submission(
    store: Store, workload_id: str, submitter: str, idempotency_key: str | None, ts_ms: int, event_json: str
) -> None:
    try:
        store.execute_write(
            "INSERT INTO api_submissions (workload_id, submitter, idempotency_key, ts_ms, event, published) "
            "VALUES (?, ?, ?, ?, ?, false)",
            [workload_id, submitter, idempotency_key, ts_ms, event_json],
        )
    except duckdb.ConstraintException as exc:
        raise SubmissionKeyTaken(str(exc)) from exc


def mark_published(store: Store, workload_id: str) -> None:
    store.execute_write("UPDATE api_submissions SET published = true WHERE workload_id = ?", [workload_id])


def published_submission(store: Store, scope: Scope, workload_id: str) -> dict[str, Any] | None:
    """A submission the API published that the sink has not stored as a workload yet (the caller's own)."""
    if not (scope.everything or scope.submitter is not None):
        return None
    where, params = ("TRUE", []) if scope.everything else ("submitter = ?", [scope.submitter])
    rows = store.query(
        f"SELECT * FROM api_submissions WHERE workload_id = ? AND published AND {where}", [workload_id, *params]
    )
    return rows[0] if rows else None


def running_workloads_on(store: Store, node_id: str) -> list[str]:
    """The workloads the sink last saw running on ``node_id``."""
    rows = store.query(
        "SELECT workload_id FROM workloads WHERE node_id = ? AND status = 'running' ORDER BY workload_id", [node_id]
    )
    return [r["workload_id"] for r in rows]


# -- forecasts -----------------------------------------------------------------------------------------------------
def _forecast(row: dict[str, Any]) -> dict[str, Any]:
    points = row["points"]
    return {**row, "points": json.loads(points) if isinstance(points, str) else points}


def zone_forecasts(store: Store, zone: str, since_ms: int) -> list[dict[str, Any]]:
    """The zone's ``grid.forecasts`` issued from ``since_ms`` on, and the last one before it, oldest first."""
    rows = store.query(
        "SELECT * FROM grid_forecasts WHERE zone = ? AND issued_ms >= (SELECT coalesce(max(issued_ms), 0) FROM "
        "grid_forecasts WHERE zone = ? AND issued_ms <= ?) ORDER BY issued_ms",
        [zone, zone, since_ms],
    )
    return [_forecast(r) for r in rows]


def hourly_intensity(store: Store, zone: str, since_ms: int, step_ms: int) -> list[dict[str, Any]]:
    """The zone's readings from ``since_ms`` as the mean of each ``step_ms`` step (the forecasts' steps)."""
    return store.query(
        "SELECT ts_ms - ts_ms % ? AS ts_ms, avg(carbon_intensity_gco2_per_kwh) AS mean_gco2_per_kwh, "
        "count(*) AS readings FROM grid_readings WHERE zone = ? AND ts_ms >= ? GROUP BY 1 ORDER BY 1",
        [step_ms, zone, since_ms - since_ms % step_ms],
    )
