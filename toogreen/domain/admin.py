"""The admin's "declare a surplus event", made real: the grid readings that report it, one per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SOURCE = "admin"


def surplus_event_readings(
    zone: str,
    latest: Mapping[str, Any] | None,
    typical_carbon: float,
    curtailment_mw: float,
    minutes: float,
    start_ms: int,
    step_s: float,
) -> list[dict[str, Any]]:
    """Readings from ``start_ms`` every ``step_s`` over ``minutes``, reporting ``curtailment_mw``; intensity,
    renewable share and price carry over from the zone's latest reading (the admin declares only the surplus)."""
    base = dict(latest or {})
    count = max(1, int(minutes * 60 // step_s) + 1)
    return [
        {
            "zone": zone,
            "ts_ms": start_ms + int(i * step_s * 1000),
            "carbon_intensity_gco2_per_kwh": float(base.get("carbon_intensity_gco2_per_kwh") or typical_carbon),
            "carbon_intensity_kind": base.get("carbon_intensity_kind") or "lifecycle",
            "carbon_intensity_basis": base.get("carbon_intensity_basis") or "average",
            "renewable_pct": base.get("renewable_pct"),
            "price": base.get("price"),
            "price_unit": base.get("price_unit") or "EUR/MWh",
            "price_market": base.get("price_market") or "day_ahead",
            "curtailment_mw": float(curtailment_mw),
            "source": SOURCE,
            "estimated": False,
        }
        for i in range(count)
    ]
