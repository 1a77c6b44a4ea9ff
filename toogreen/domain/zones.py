"""The grid zones the product knows, with the typical values the demo's synthetic grid varies around."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Zone:
    code: str
    name: str
    lat: float
    lng: float
    typical_carbon_gco2_per_kwh: float
    typical_renewable_pct: float
    typical_price_eur_per_mwh: float
    entsoe_eic: str | None = None  # ENTSO-E bidding-zone EIC code


ZONES: dict[str, Zone] = {
    z.code: z
    for z in (
        Zone("FR", "France", 46.6, 2.3, 60, 75, 70, "10YFR-RTE------C"),
        Zone("DE", "Germany", 51.2, 10.4, 350, 45, 90, "10Y1001A1001A82H"),
        Zone("ES", "Spain", 40.4, -3.7, 180, 55, 65, "10YES-REE------0"),
        Zone("PT", "Portugal", 39.4, -8.2, 150, 60, 65, "10YPT-REN------W"),
        Zone("NL", "Netherlands", 52.1, 5.3, 400, 30, 95, "10YNL----------L"),
        Zone("BE", "Belgium", 50.5, 4.5, 160, 55, 85, "10YBE----------2"),
        Zone("IT", "Italy", 41.9, 12.6, 280, 40, 110, "10YIT-GRTN-----B"),
        Zone("GB", "Great Britain", 54.0, -2.0, 200, 50, 95, "10YGB----------A"),
        Zone("US-CAL-CISO", "California (CAISO)", 36.8, -119.4, 220, 60, 60),
        Zone("US-NY-NYIS", "New York (NYISO)", 42.9, -75.5, 300, 30, 55),
        Zone("US-TEX-ERCO", "Texas (ERCOT)", 31.0, -99.0, 380, 35, 45),
    )
}


class UnknownZoneError(ValueError):
    pass


def require_zone(code: str) -> Zone:
    """The zone with this code, or an error that lists the known ones."""
    try:
        return ZONES[code]
    except KeyError:
        raise UnknownZoneError(f"unknown zone {code!r}: known zones are {', '.join(ZONES)}") from None
