"""How each topic's records become DuckDB rows: plain mapping, no database here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from toogreen.domain.receipts import receipt_hash
from toogreen.topics import (
    BILLING_RECORDS,
    DEAD_LETTERS,
    GRID_FORECASTS,
    GRID_READINGS,
    NODE_COMMANDS,
    NODE_REGISTRY,
    NODE_TELEMETRY,
    ROUTING_DECISIONS,
    SETTLEMENT_RECEIPTS,
    WORKLOAD_EVENTS,
    ZONE_WINDOWS,
)

Row = dict[str, Any]


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def grid_row(r: Row) -> Row:
    return {**r, "ts": _ts(r["ts_ms"])}


def window_row(r: Row) -> Row:
    return {**r, "window_start": _ts(r["window_start_ms"])}


def registration_row(r: Row) -> Row:
    row = {k: v for k, v in r.items() if k not in ("ts_ms", "drained")}  # a drain is the router's, not a column
    row["registered_ms"] = r["ts_ms"]
    return row


def telemetry_row(r: Row) -> Row:
    return {
        "node_id": r["node_id"], "last_seen_ms": r["ts_ms"], "sm_util_pct": r["sm_util_pct"],
        "mem_used_mb": r["mem_used_mb"], "mem_total_mb": r["mem_total_mb"], "power_w": r["power_w"],
        "energy_j": r["energy_j"], "temperature_c": r["temperature_c"], "health": r["health"],
        "mig_slices_free": r["mig_slices_free"], "telemetry_source": r["source"],
    }  # fmt: skip


def decision_row(r: Row) -> Row:
    return {
        **r,
        "alternatives": json.dumps(r["alternatives"]),
        "grid_windows": json.dumps(r["grid_windows"]),
        "exclusions": json.dumps(r.get("exclusions") or []),
        "deferral": None if r.get("deferral") is None else json.dumps(r["deferral"]),
    }


def command_row(r: Row) -> Row:
    return {k: r[k] for k in ("command_id", "node_id", "ts_ms", "action", "workload_id", "checkpoint_uri",
                              "vram_mb", "expected_hours", "mig_profile", "decision_id")}  # fmt: skip


def receipt_row(r: Row) -> Row:
    return {
        **r,
        "intervals": json.dumps(r["intervals"]),
        "data_sources": json.dumps(r["data_sources"]),
        "receipt_hash": receipt_hash(r),
    }


def billing_row(r: Row) -> Row:
    return {**r, "metering_ids": json.dumps(r["metering_ids"])}


def forecast_row(r: Row) -> Row:
    return {**r, "points": json.dumps(r["points"])}


def dead_letter_row(r: Row) -> Row:
    return dict(r)


# topic -> (table, row builder). Workload events are handled apart: they drive a state machine.
SIMPLE_TABLES = {
    GRID_READINGS.name: ("grid_readings", grid_row),
    ZONE_WINDOWS.name: ("zone_windows", window_row),
    NODE_REGISTRY.name: ("nodes:registration", registration_row),
    NODE_TELEMETRY.name: ("nodes:telemetry", telemetry_row),
    ROUTING_DECISIONS.name: ("routing_decisions", decision_row),
    NODE_COMMANDS.name: ("node_commands", command_row),
    SETTLEMENT_RECEIPTS.name: ("carbon_receipts", receipt_row),
    BILLING_RECORDS.name: ("billing_records", billing_row),
    DEAD_LETTERS.name: ("dead_letters", dead_letter_row),
    GRID_FORECASTS.name: ("grid_forecasts", forecast_row),
}
SINK_TOPICS = (*SIMPLE_TABLES, WORKLOAD_EVENTS.name)
