"""The query API (FastAPI): zones, nodes with their current scores, workloads (submit, list, one with its
decisions), decisions, a dashboard summary and health. Handlers stay thin: read DuckDB or publish an event, and
call the pure domain logic for anything computed."""

from __future__ import annotations

import asyncio
import json
import time
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware

from api.dashboard import mount_dashboard
from api.models import SurplusEvent, WorkloadSubmission
from sinks.duckdb_store import Store
from toogreen.codec import EncodeError
from toogreen.domain.admin import surplus_event_readings
from toogreen.domain.node_state import to_node_view
from toogreen.domain.scoring import route
from toogreen.domain.views import WorkloadSpec, ZoneView
from toogreen.domain.zones import ZONES
from toogreen.kafka.producer import RecordProducer
from toogreen.settings import Settings
from toogreen.signing import load_or_create_key, public_key_hex, public_key_pem, verify_receipt
from toogreen.submission import submission_event
from toogreen.topics import GRID_READINGS, WORKLOAD_EVENTS

ACTIVE_STATES = ("routed", "running", "checkpointed", "migrating")
REFERENCE_WORKLOAD = WorkloadSpec(workload_id="reference", vram_mb=1, expected_hours=1.0)

LATEST_WINDOWS_SQL = """
SELECT * FROM zone_windows WHERE kind = ?
QUALIFY row_number() OVER (PARTITION BY zone ORDER BY window_start_ms DESC) = 1
"""
LATEST_READINGS_SQL = """
SELECT * EXCLUDE (ts) FROM grid_readings
QUALIFY row_number() OVER (PARTITION BY zone ORDER BY ts_ms DESC) = 1
"""


class BodySizeLimit(BaseHTTPMiddleware):
    """Refuse bodies over the configured size before reading them."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and int(length) > self.max_bytes:
            return JSONResponse(
                {"detail": f"request body of {length} bytes is over the {self.max_bytes}-byte limit"}, status_code=413
            )
        return await call_next(request)


def _now_ms() -> int:
    return int(time.time() * 1000)


def zone_views(store: Store) -> dict[str, ZoneView]:
    """Each zone's routing view from its newest tumbling window in DuckDB."""
    return {
        r["zone"]: ZoneView(
            zone=r["zone"],
            carbon_gco2_per_kwh=r["carbon_mean"],
            renewable_pct=r["renewable_mean"],
            price_eur_per_mwh=r["price_mean"],
            surplus=bool(r["surplus"]),
            surplus_strength=r["surplus_strength"] or 0.0,
            window_start_ms=r["window_start_ms"],
            last_ts_ms=r["last_ts_ms"],
        )
        for r in store.query(LATEST_WINDOWS_SQL, ["tumbling"])
    }


def _node_state(row: dict[str, Any]) -> dict[str, Any]:
    """The node-state shape of ``toogreen.domain.node_state`` from a ``nodes`` row."""
    state: dict[str, Any] = {}
    if row["node_type"] is not None:
        state["registration"] = row
    if row["last_seen_ms"] is not None:
        state["telemetry"] = {
            "last_seen_ms": row["last_seen_ms"], "util_rolling_pct": row["sm_util_pct"], "health": row["health"],
            "mem_used_mb": row["mem_used_mb"], "mem_total_mb": row["mem_total_mb"],
        }  # fmt: skip
    return state


def _decision(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "alternatives": json.loads(row["alternatives"]),
        "grid_windows": json.loads(row["grid_windows"]),
        "exclusions": json.loads(row["exclusions"] or "[]"),
    }


def receipt_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The receipt as it was signed, from its DuckDB row."""
    return {**row, "intervals": json.loads(row["intervals"]), "data_sources": json.loads(row["data_sources"])}


async def _publish_over_time(producer: RecordProducer, readings: list[dict[str, Any]]) -> None:
    """Each reading when its time comes (event time = wall time), so no reading lies in the future."""
    for reading in readings:
        delay = (reading["ts_ms"] - _now_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        producer.send(GRID_READINGS.name, reading["zone"], reading)
        await asyncio.to_thread(producer.flush, 10)


def create_app(settings: Settings, store: Store, producer: RecordProducer | None) -> FastAPI:
    app = FastAPI(
        title="Too Green To Go",
        version="0.1.0",
        description="Routes AI workloads to the GPUs where electricity is cleanest and cheapest.",
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.api.max_body_bytes)
    pending: set[asyncio.Task[None]] = set()  # surplus events still publishing

    @lru_cache(maxsize=1)
    def signing_key() -> Ed25519PrivateKey:
        return load_or_create_key(settings.settlement.signing_key_path)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        counts = store.query(
            "SELECT (SELECT count(*) FROM grid_readings) AS grid_readings, "
            "(SELECT count(*) FROM nodes) AS nodes, (SELECT count(*) FROM workloads) AS workloads"
        )
        return {"status": "ok", "bootstrap": settings.bootstrap, "duckdb": str(store.path), **counts[0]}

    @app.get("/api/v1/dashboard")
    def dashboard() -> dict[str, Any]:
        statuses = store.query("SELECT status, count(*) AS n FROM workloads GROUP BY status ORDER BY status")
        zones = zone_views(store)
        return {
            "zones": len(zones),
            "zones_in_surplus": sorted(z for z, v in zones.items() if v.surplus),
            "nodes": store.query("SELECT count(*) AS n FROM nodes")[0]["n"],
            "workloads_by_status": {r["status"]: r["n"] for r in statuses},
            "decisions": store.query("SELECT count(*) AS n FROM routing_decisions")[0]["n"],
            "dead_letters": store.query("SELECT count(*) AS n FROM dead_letters")[0]["n"],
        }

    @app.get("/api/v1/zones")
    def zones() -> list[dict[str, Any]]:
        now = _now_ms()
        latest = {r["zone"]: r for r in store.query(LATEST_READINGS_SQL)}
        tumbling = {r["zone"]: r for r in store.query(LATEST_WINDOWS_SQL, ["tumbling"])}
        hopping = {r["zone"]: r for r in store.query(LATEST_WINDOWS_SQL, ["hopping"])}
        out = []
        for code in sorted(set(latest) | set(tumbling)):
            reading = latest.get(code)
            out.append({
                "zone": code,
                "name": ZONES[code].name if code in ZONES else code,
                "latest": reading,
                "staleness_s": None if reading is None else round((now - reading["ts_ms"]) / 1000, 1),
                "window_5m": _window(tumbling.get(code)),
                "window_1h": _window(hopping.get(code)),
                "surplus": bool(tumbling.get(code, {}).get("surplus")),
                "surplus_reason": tumbling.get(code, {}).get("surplus_reason"),
            })  # fmt: skip
        return out

    @app.get("/api/v1/zones/{zone}/history")
    def zone_history(
        zone: str,
        kind: str = Query("tumbling", pattern="^(tumbling|hopping)$"),
        limit: int = Query(288, ge=1, le=10000),
    ) -> dict[str, Any]:
        if zone not in ZONES:
            raise HTTPException(404, f"unknown zone {zone!r}: known zones are {', '.join(ZONES)}")
        rows = store.query(
            "SELECT * EXCLUDE (window_start) FROM zone_windows WHERE zone = ? AND kind = ? "
            "ORDER BY window_start_ms DESC LIMIT ?",
            [zone, kind, limit],
        )
        return {"zone": zone, "kind": kind, "windows": rows[::-1]}

    @app.get("/api/v1/nodes")
    def nodes() -> list[dict[str, Any]]:
        rows = store.query("SELECT * FROM nodes ORDER BY node_id")
        holds: dict[str, dict[str, dict[str, Any]]] = {}
        for r in store.query(
            "SELECT w.workload_id, w.node_id, w.vram_mb, d.mig_profile FROM workloads w "
            "LEFT JOIN routing_decisions d ON d.decision_id = w.last_decision_id WHERE w.status IN ?",
            [list(ACTIVE_STATES)],
        ):
            holds.setdefault(r["node_id"], {})[r["workload_id"]] = {
                "vram_mb": r["vram_mb"],
                "mig_profile": r["mig_profile"],
            }
        reserved = {node: sum(h["vram_mb"] for h in held.values()) for node, held in holds.items()}
        views = [v for r in rows if (v := to_node_view(_node_state(r), holds.get(r["node_id"], {})))]
        decision = route(
            REFERENCE_WORKLOAD, views, zone_views(store), _now_ms(), settings.scoring, settings.pricing,
            migration=settings.migration,
        )  # fmt: skip
        scored = {c.node_id: c for c in decision.alternatives}
        out = []
        for r in rows:
            c = scored.get(r["node_id"])
            out.append({
                **r,
                "vram_reserved_mb": int(reserved.get(r["node_id"]) or 0),
                "tier": c.tier if c else None,
                "routable": bool(c and c.eligible),
                "not_routable_because": c.excluded_reason if c else "no registration or telemetry yet",
                "score": c.score if c else None,
                "carbon_gco2_per_kwh": c.carbon_gco2_per_kwh if c else None,
                "price_eur_per_gpu_hour": c.price_eur_per_gpu_hour if c else None,
            })  # fmt: skip
        return out

    @app.post("/api/v1/workloads", status_code=202)
    def submit(body: WorkloadSubmission) -> dict[str, Any]:
        if producer is None:
            raise HTTPException(503, "this API runs without a Kafka producer: submissions are disabled")
        if body.deadline is not None and body.deadline.timestamp() * 1000 <= _now_ms():
            raise HTTPException(422, "deadline is in the past")
        event = submission_event(body.to_request(submitter="api"))
        try:
            producer.send(WORKLOAD_EVENTS.name, event["workload_id"], event)
            producer.flush(timeout_s=10)
        except EncodeError as exc:
            raise HTTPException(422, str(exc)) from exc
        except Exception as exc:
            raise HTTPException(503, f"could not publish the submission: {exc}") from exc
        wid = event["workload_id"]
        return {"workload_id": wid, "status": "submitted", "href": f"/api/v1/workloads/{wid}"}

    @app.get("/api/v1/workloads")
    def list_workloads(
        status: str | None = None, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
    ) -> list[dict[str, Any]]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return store.query(
            f"SELECT * FROM workloads {where} ORDER BY submitted_ms DESC, workload_id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    @app.get("/api/v1/workloads/{workload_id}")
    def get_workload(workload_id: str) -> dict[str, Any]:
        rows = store.query("SELECT * FROM workloads WHERE workload_id = ?", [workload_id])
        if not rows:
            raise HTTPException(404, f"unknown workload {workload_id!r} (a new submission appears within seconds)")
        decisions = store.query(
            "SELECT * FROM routing_decisions WHERE workload_id = ? ORDER BY ts_ms, decision_id", [workload_id]
        )
        events = store.query(
            "SELECT * FROM workload_events WHERE workload_id = ? AND applied ORDER BY log_offset, ts_ms", [workload_id]
        )
        receipt = store.query("SELECT receipt_id FROM carbon_receipts WHERE workload_id = ?", [workload_id])
        billing = store.query(
            "SELECT * EXCLUDE (metering_ids) FROM billing_records WHERE workload_id = ?", [workload_id]
        )
        checkpoints = {e["decision_id"]: e["checkpoint_uri"] for e in events if e["type"] == "migrating"}
        moves = [
            {
                "decision_id": d["decision_id"], "ts_ms": d["ts_ms"], "from_node_id": d["from_node_id"],
                "from_zone": d["from_zone"], "to_node_id": d["chosen_node_id"], "to_zone": d["chosen_zone"],
                "checkpoint_uri": checkpoints.get(d["decision_id"]), "score_gain": d["score_gain"],
                "saved_gco2": d["saved_gco2"], "move_cost_s": d["move_cost_s"], "reason": d["reason"],
            }
            for d in decisions
            if d["type"] == "reroute"
        ]  # fmt: skip
        return {
            **rows[0],
            "moves": moves,
            "receipt_id": receipt[0]["receipt_id"] if receipt else None,
            "billing": billing,
            "decisions": [_decision(d) for d in decisions],
            "events": events,
        }

    @app.get("/api/v1/receipts/{receipt_id}")
    def get_receipt(receipt_id: str) -> dict[str, Any]:
        rows = store.query("SELECT * EXCLUDE (receipt_hash) FROM carbon_receipts WHERE receipt_id = ?", [receipt_id])
        if not rows:
            raise HTTPException(404, f"unknown receipt {receipt_id!r}")
        return receipt_from_row(rows[0])

    @app.post("/api/v1/receipts/verify")
    def verify(receipt: dict[str, Any]) -> dict[str, Any]:
        result = verify_receipt(receipt, signing_key().public_key())
        return {"valid": result.valid, "failed_check": result.failed_check}

    @app.get("/api/v1/public-key")
    def public_key() -> dict[str, str]:
        key = signing_key()
        return {"algorithm": "Ed25519", "hex": public_key_hex(key), "pem": public_key_pem(key)}

    @app.get("/api/v1/billing")
    def billing(workload_id: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        where, params = ("WHERE b.workload_id = ?", [workload_id]) if workload_id else ("", [])
        records = store.query(
            f"SELECT b.* EXCLUDE (metering_ids), p.status AS payout_status, p.rail AS payout_rail, "
            f"p.lamports AS payout_lamports, p.reference AS payout_reference FROM billing_records b "
            f"LEFT JOIN payouts p ON p.workload_id = b.workload_id {where} ORDER BY b.ts_ms DESC LIMIT ?",
            [*params, limit],
        )
        totals = store.query(
            "SELECT count(*) AS records, coalesce(sum(gpu_hours), 0) AS gpu_hours, coalesce(sum(kwh), 0) AS kwh, "
            "coalesce(sum(charge), 0) AS charge, coalesce(sum(fee), 0) AS fee, coalesce(sum(payout), 0) AS payout "
            "FROM billing_records"
        )[0]
        return {"currency": settings.pricing.currency, "totals": totals, "records": records}

    @app.get("/api/v1/sustainability")
    def sustainability() -> dict[str, Any]:
        base = """
            WITH iv AS (
              SELECT r.workload_id, unnest(from_json(r.intervals,
                '[{"node_id":"VARCHAR","zone":"VARCHAR","kwh":"DOUBLE","gco2":"DOUBLE"}]'), recursive := true)
              FROM carbon_receipts r)
            SELECT GROUP_KEY AS key, sum(iv.kwh) AS kwh, sum(iv.gco2) AS gco2_actual,
                   sum(iv.kwh) * ? AS gco2_baseline
            FROM iv LEFT JOIN nodes n USING (node_id) GROUP BY ALL ORDER BY 1
        """
        baseline = float(settings.settlement.baseline_gco2_per_kwh)
        total = store.query(
            "SELECT count(*) AS receipts, coalesce(sum(kwh), 0) AS kwh, coalesce(sum(gco2_actual), 0) AS gco2_actual, "
            "coalesce(sum(gco2_baseline), 0) AS gco2_baseline, coalesce(sum(gco2_saved), 0) AS gco2_saved, "
            "sum(gco2_market_based) AS gco2_market_based FROM carbon_receipts"
        )[0]

        def grouped(key: str) -> list[dict[str, Any]]:
            rows = store.query(base.replace("GROUP_KEY", key), [baseline])
            return [{**r, "gco2_saved": r["gco2_baseline"] - r["gco2_actual"]} for r in rows]

        return {
            "baseline": f"{settings.settlement.baseline_name} {baseline:g} gCO2eq/kWh",
            "totals": total,
            "by_zone": grouped("iv.zone"),
            "by_provider_type": grouped("n.node_type"),
        }

    @app.get("/api/v1/decisions")
    def decisions(
        workload_id: str | None = None,
        type: str | None = Query(None, pattern="^(initial|reroute|rejected|queued|no_move)$"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if workload_id:
            clauses.append("workload_id = ?")
            params.append(workload_id)
        if type:
            clauses.append("type = ?")
            params.append(type)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = store.query(f"SELECT * FROM routing_decisions {where} ORDER BY ts_ms DESC LIMIT ?", [*params, limit])
        return [_decision(r) for r in rows]

    @app.post("/api/v1/admin/surplus-events", status_code=202)
    async def surplus_event(body: SurplusEvent, authorization: str | None = Header(None)) -> dict[str, Any]:
        if authorization != f"Bearer {settings.api.admin_token}":
            raise HTTPException(401, "admin only: send Authorization: Bearer <admin token>")
        if body.zone not in ZONES:
            raise HTTPException(422, f"unknown zone {body.zone!r}: known zones are {', '.join(ZONES)}")
        if producer is None:
            raise HTTPException(503, "this API runs without a Kafka producer")
        latest = store.query(
            "SELECT * EXCLUDE (ts) FROM grid_readings WHERE zone = ? ORDER BY ts_ms DESC LIMIT 1", [body.zone]
        )
        readings = surplus_event_readings(
            body.zone, latest[0] if latest else None, ZONES[body.zone].typical_carbon_gco2_per_kwh,
            body.curtailment_mw, body.minutes, _now_ms(), settings.api.surplus_event_step_s,
        )  # fmt: skip
        task = asyncio.create_task(_publish_over_time(producer, readings))
        pending.add(task)
        task.add_done_callback(pending.discard)
        return {"zone": body.zone, "curtailment_mw": body.curtailment_mw, "readings": len(readings),
                "from_ms": readings[0]["ts_ms"], "until_ms": readings[-1]["ts_ms"], "source": "admin"}  # fmt: skip

    @app.get("/api/v1/dead-letters")
    def dead_letters(limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        rows = store.query(
            "SELECT source_topic, source_partition, source_offset, ts_ms, stage, reason, "
            "octet_length(raw) AS raw_bytes FROM dead_letters ORDER BY ts_ms DESC LIMIT ?",
            [limit],
        )
        return rows

    mount_dashboard(app)  # last: the dashboard at / takes only the paths no API route took
    return app


def _window(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    keep = ("window_start_ms", "window_end_ms", "count", "late_count", "carbon_mean", "carbon_min", "carbon_max",
            "carbon_last", "renewable_mean", "renewable_min", "renewable_max", "renewable_last", "price_mean",
            "price_min", "price_max", "price_last", "curtailment_max_mw", "last_ts_ms")  # fmt: skip
    return {k: row[k] for k in keep}
