"""Settling a finished workload: its receipt (unsigned) and its billing record, from what it ran."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toogreen.domain.accounting import totals
from toogreen.domain.pricing import split_charge
from toogreen.domain.receipts import build_receipt
from toogreen.domain.records import Accruals, Workload
from toogreen.settings import Settings


def billing_id_for(workload_id: str) -> str:
    return f"bill-{workload_id}-final"


def settle(
    workload_state: Workload | Mapping[str, Any], intervals: Accruals, now_ms: int, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(unsigned receipt, billing record) for a workload that ran; None if it never drew energy anywhere."""
    if not intervals:
        return None
    if isinstance(workload_state, Workload):
        workload_id, price_eur = workload_state.workload_id, workload_state.price_eur_per_gpu_hour
    else:  # its wire form
        workload_id, price_eur = workload_state["workload_id"], workload_state.get("price_eur_per_gpu_hour")
    sources = {"node.telemetry:" + m for i in intervals for m in i.methods}
    sources.add("grid.readings via zone.windows (5-min tumbling mean)")
    receipt = build_receipt(
        workload_id,
        list(intervals),
        now_ms,
        settings.settlement.baseline_gco2_per_kwh,
        settings.settlement.baseline_name,
        sorted(sources),
    )
    t = totals(intervals, settings.settlement.baseline_gco2_per_kwh)
    price = float(price_eur or 0.0)
    split = split_charge(price, t.gpu_hours, settings.pricing)
    billing = {
        "billing_id": billing_id_for(workload_id),
        "workload_id": workload_id,
        "ts_ms": now_ms,
        "gpu_hours": round(t.gpu_hours, 6),
        "kwh": round(t.kwh, 6),
        "charge": split.charge,
        "fee": split.fee,
        "payout": split.payout,
        "currency": settings.pricing.currency,
        "node_id": intervals[-1].node_id,
        "metering_ids": [billing_id_for(workload_id)],
    }
    return receipt, billing
