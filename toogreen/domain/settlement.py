"""Settling what a workload ran: billing records while it runs, one per metering interval and node
(:func:`interim_billing`), and at its end its receipt (unsigned) and the final billing record for what no interim
record billed (:func:`settle`).

Every billing record's id is deterministic (``bill-{workload}-{node}-{end of the metering interval}``, and
``bill-{workload}-final``): it is the Stripe meter event's identifier, so a replay of the log bills nothing twice.
An interval billed by an interim record carries that record's id (``AccrualInterval.billing_id``); the final record
bills the rest, and lists every record's id (``metering_ids``), so the records of one workload add up to its
receipt's usage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from msgspec.structs import replace

from toogreen.domain.accounting import metering_bucket, totals
from toogreen.domain.pricing import split_charge
from toogreen.domain.receipts import build_receipt
from toogreen.domain.records import AccrualInterval, Accruals, Workload
from toogreen.settings import Settings


def billing_id_for(workload_id: str) -> str:
    return f"bill-{workload_id}-final"


def interim_billing_id(workload_id: str, node_id: str, boundary_ms: int) -> str:
    return f"bill-{workload_id}-{node_id}-{boundary_ms}"


def metering_boundaries(after_ms: int, up_to_ms: int, metering_ms: int) -> list[int]:
    """The metering boundaries in (after, up to]: the ends of the metering intervals a sample closed."""
    if metering_ms <= 0 or up_to_ms <= after_ms:
        return []
    first = metering_bucket(after_ms, metering_ms) + metering_ms
    return list(range(first, up_to_ms + 1, metering_ms))


def _billing(
    billing_id: str,
    workload_id: str,
    node_id: str | None,
    intervals: Iterable[AccrualInterval],
    price_eur_per_gpu_hour: float | None,
    ts_ms: int,
    settings: Settings,
    metering_ids: list[str],
) -> dict[str, Any]:
    t = totals(intervals, settings.settlement.baseline_gco2_per_kwh)
    split = split_charge(float(price_eur_per_gpu_hour or 0.0), t.gpu_hours, settings.pricing)
    return {
        "billing_id": billing_id,
        "workload_id": workload_id,
        "ts_ms": ts_ms,
        "gpu_hours": round(t.gpu_hours, 6),
        "kwh": round(t.kwh, 6),
        "charge": split.charge,
        "fee": split.fee,
        "payout": split.payout,
        "currency": settings.pricing.currency,
        "node_id": node_id,
        "metering_ids": metering_ids,
    }


def interim_billing(
    workload_id: str,
    node_id: str,
    intervals: Accruals,
    boundary_ms: int,
    price_eur_per_gpu_hour: float | None,
    settings: Settings,
) -> tuple[dict[str, Any] | None, Accruals]:
    """The billing record of the metering interval ending at ``boundary_ms`` for what the workload drew on
    ``node_id`` in it (None when it drew nothing there then, or it was billed already), and its intervals with the
    billed ones marked."""
    metering_ms = int(settings.settlement.metering_interval_s * 1000)
    start_ms = boundary_ms - metering_ms

    def billable(i: AccrualInterval) -> bool:
        return i.billing_id is None and i.node_id == node_id and i.start_ms >= start_ms and i.end_ms <= boundary_ms

    billed = [i for i in intervals if billable(i)]
    if metering_ms <= 0 or not billed:
        return None, intervals
    billing_id = interim_billing_id(workload_id, node_id, boundary_ms)
    record = _billing(billing_id, workload_id, node_id, billed, price_eur_per_gpu_hour, boundary_ms, settings,
                      [billing_id])  # fmt: skip
    return record, [replace(i, billing_id=billing_id) if billable(i) else i for i in intervals]


def settle(
    workload_state: Workload | Mapping[str, Any], intervals: Accruals, now_ms: int, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(unsigned receipt, final billing record) for a workload that ran; None if it never drew energy anywhere.
    The receipt covers every interval; the final record what no interim record billed."""
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
    final_id = billing_id_for(workload_id)
    interim_ids = sorted({i.billing_id for i in intervals if i.billing_id is not None})
    unbilled = [i for i in intervals if i.billing_id is None]
    billing = _billing(final_id, workload_id, intervals[-1].node_id, unbilled, price_eur, now_ms, settings,
                       [*interim_ids, final_id])  # fmt: skip
    return receipt, billing
