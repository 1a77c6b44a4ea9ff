"""Carbon receipts: what one holds (SPEC §6), its canonical encoding, and its hash.

The canonical encoding is JSON with sorted keys, no insignificant whitespace, UTF-8, numbers as Python's
shortest round-trip repr (floats rounded to 6 decimals when the receipt is built), over every field but the
signature. Signing and verifying live in ``toogreen.signing``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from toogreen.domain.accounting import totals
from toogreen.domain.records import Accruals

METHOD = (
    "location-based (GHG Protocol Scope 2): energy per interval from the NVML energy counter (else integrated "
    "power) x workload share x PUE, times the zone's windowed carbon intensity in that interval; market-based "
    "figure reported beside, not netted"
)


def receipt_id_for(workload_id: str) -> str:
    return "rcpt-" + hashlib.sha256(f"receipt|{workload_id}".encode()).hexdigest()[:24]


def _r(x: float) -> float:
    return round(float(x), 6)


def build_receipt(
    workload_id: str,
    intervals: Accruals,
    issued_ms: int,
    baseline_gco2_per_kwh: float,
    baseline_name: str,
    data_sources: list[str],
) -> dict[str, Any]:
    """The unsigned receipt (``signature`` and ``public_key`` empty)."""
    t = totals(intervals, baseline_gco2_per_kwh)
    return {
        "receipt_id": receipt_id_for(workload_id),
        "workload_id": workload_id,
        "issued_ms": issued_ms,
        "intervals": [
            {
                "node_id": i.node_id,
                "zone": i.zone,
                "start_ms": i.start_ms,
                "end_ms": i.end_ms,
                "kwh": _r(i.kwh),
                "carbon_gco2_per_kwh": _r(i.carbon_gco2_per_kwh),
                "gco2": _r(i.gco2),
            }
            for i in intervals
        ],
        "kwh": _r(t.kwh),
        "gco2_actual": _r(t.gco2_actual),
        "gco2_baseline": _r(t.gco2_baseline),
        "gco2_saved": _r(t.gco2_saved),
        "gco2_market_based": None if t.gco2_market_based is None else _r(t.gco2_market_based),
        "method": f"{METHOD}; baseline: {baseline_name} {baseline_gco2_per_kwh:g} gCO2eq/kWh",
        "data_sources": sorted(data_sources),
        "signature": "",
        "public_key": "",
    }


def canonical_bytes(receipt: Mapping[str, Any]) -> bytes:
    """What the signature covers: every field but ``signature``."""
    body = {k: v for k, v in receipt.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def receipt_hash(receipt: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical encoding and the signature: what a Solana memo anchors."""
    return hashlib.sha256(canonical_bytes(receipt) + receipt["signature"].encode()).hexdigest()
