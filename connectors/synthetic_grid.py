"""A synthetic grid for the demo (a simulator, labelled ``synthetic`` in every record's source).

Each zone varies around its typical values (``toogreen.domain.zones``): solar follows the zone's local solar
time, wind is a persistent random process (AR(1)), and carbon intensity and price fall as the renewable share
rises, so that surpluses (curtailment, very low prices) really occur. Deterministic for a seed and a clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from toogreen.domain.zones import ZONES, Zone

WIND_PERSISTENCE = 0.97
SOLAR_SWING_PCT = 22.0
WIND_SWING_PCT = 12.0
CURTAILMENT_ABOVE_PCT = 88.0
CURTAILMENT_MW_PER_PCT = 150.0
SOURCE = "synthetic"


def solar_factor(zone: Zone, ts_ms: int) -> float:
    """0 at night, 1 at local solar noon."""
    solar_hour = (ts_ms / 3_600_000 + zone.lng / 15.0) % 24
    return max(0.0, math.sin(math.pi * (solar_hour - 6.0) / 12.0))


@dataclass
class _ZoneWeather:
    wind: float = 0.0  # standard-normal, persistent


class SyntheticGrid:
    """Produces one ``grid.readings`` record per zone per call to :meth:`readings`."""

    def __init__(self, seed: int, zones: Iterable[str] = ZONES) -> None:
        self._rng = random.Random(seed)
        self.zones = [ZONES[z] for z in zones]
        self._weather = {z.code: _ZoneWeather(wind=self._rng.gauss(0, 1)) for z in self.zones}
        self._innovation_sd = math.sqrt(1 - WIND_PERSISTENCE**2)

    def _advance_wind(self, zone: Zone) -> float:
        w = self._weather[zone.code]
        w.wind = WIND_PERSISTENCE * w.wind + self._innovation_sd * self._rng.gauss(0, 1)
        return w.wind

    def reading(self, zone: Zone, weather_ts_ms: int, stamp_ms: int) -> dict:
        """The reading of ``zone`` for weather at ``weather_ts_ms``, stamped with event time ``stamp_ms``."""
        wind = self._advance_wind(zone)
        solar = solar_factor(zone, weather_ts_ms)
        renewable = zone.typical_renewable_pct + SOLAR_SWING_PCT * (solar - 0.35) + WIND_SWING_PCT * wind
        renewable = min(99.0, max(2.0, renewable))
        fossil_share = (100.0 - renewable) / (100.0 - zone.typical_renewable_pct)
        carbon = max(8.0, zone.typical_carbon_gco2_per_kwh * fossil_share * (1 + self._rng.gauss(0, 0.02)))
        price = zone.typical_price_eur_per_mwh * (0.25 + 0.75 * fossil_share) + self._rng.gauss(0, 3)
        if renewable > CURTAILMENT_ABOVE_PCT:
            price -= (renewable - CURTAILMENT_ABOVE_PCT) * 6
        curtailment = (
            (renewable - CURTAILMENT_ABOVE_PCT) * CURTAILMENT_MW_PER_PCT if renewable > CURTAILMENT_ABOVE_PCT else None
        )
        return {
            "zone": zone.code,
            "ts_ms": stamp_ms,
            "carbon_intensity_gco2_per_kwh": round(carbon, 2),
            "carbon_intensity_kind": "lifecycle",
            "carbon_intensity_basis": "average",
            "renewable_pct": round(renewable, 2),
            "price": round(price, 2),
            "price_unit": "EUR/MWh",
            "price_market": "day_ahead",
            "curtailment_mw": None if curtailment is None else round(curtailment, 1),
            "source": SOURCE,
            "estimated": False,
        }

    def readings(self, weather_ts_ms: int, stamp_ms: int | None = None) -> list[dict]:
        stamp = weather_ts_ms if stamp_ms is None else stamp_ms
        return [self.reading(z, weather_ts_ms, stamp) for z in self.zones]
