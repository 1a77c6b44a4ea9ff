"""ENTSO-E actual generation per production type: the CSV layout of the shared 2020 data, and the Transparency
Platform API's XML (document type A75), into mixes, then into carbon intensity and renewable share.

Gaps (empty cells, rows with no generation), duplicate timestamps and the DST changes (times are read as UTC;
an explicit offset is honoured) are handled and counted; negative pumped storage is consumption and left out.
"""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from toogreen.domain.intensity import (
    GridDataError,
    IntensityPoint,
    MixIntensity,
    format_time,
    mix_intensity,
    parse_time,
    read_intensity_csv,
)
from toogreen.domain.zones import require_zone
from toogreen.settings import GridSourceSettings

# ENTSO-E PsrType codes to the production-type names of the CSV layout.
PSR_TYPES = {
    "B01": "Biomass", "B02": "Fossil Brown coal/Lignite", "B03": "Fossil Coal-derived gas", "B04": "Fossil Gas",
    "B05": "Fossil Hard coal", "B06": "Fossil Oil", "B07": "Fossil Oil shale", "B08": "Fossil Peat",
    "B09": "Geothermal", "B10": "Hydro Pumped Storage", "B11": "Hydro Run-of-river and poundage",
    "B12": "Hydro Water Reservoir", "B13": "Marine", "B14": "Nuclear", "B15": "Other renewable", "B16": "Solar",
    "B17": "Waste", "B18": "Wind Offshore", "B19": "Wind Onshore", "B20": "Other",
}  # fmt: skip
RESOLUTIONS = {"PT15M": 15, "PT30M": 30, "PT60M": 60, "P1D": 1440}


class EntsoeError(GridDataError):
    """A Transparency Platform answer or file that cannot be used."""


@dataclass
class ProductionSeries:
    """Mixes in time order, one per timestamp, with what was repaired on the way."""

    mixes: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    duplicates: int = 0
    empty_cells: int = 0
    rows_without_data: int = 0


def read_production_csv(path: Path) -> ProductionSeries:
    series = ProductionSeries()
    by_time: dict[int, dict[str, float]] = {}
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        columns = header[1:]
        for row in reader:
            if not row or not row[0].strip():
                continue
            ts = parse_time(row[0])
            mix: dict[str, float] = {}
            for column, cell in zip(columns, row[1:], strict=False):
                if cell.strip() == "":
                    series.empty_cells += 1
                    continue
                value = float(cell)
                if math.isfinite(value):
                    mix[column] = value
                else:
                    series.empty_cells += 1
            if not mix:
                series.rows_without_data += 1
                continue
            if ts in by_time:
                series.duplicates += 1  # the first published value wins; the repeat is counted
                continue
            by_time[ts] = mix
    series.mixes = sorted(by_time.items())
    return series


def intensities(
    series: Iterable[tuple[int, dict[str, float]]], settings: GridSourceSettings, include_imports: bool = True
) -> Iterator[tuple[int, MixIntensity]]:
    renewable = frozenset(settings.renewable_fuels)
    for ts, mix in series:
        result = mix_intensity(
            mix,
            settings.lifecycle_factors_gco2_per_kwh,
            settings.import_factors_gco2_per_kwh,
            renewable,
            include_imports,
        )
        if result is not None:
            yield ts, result


def write_intensity_csv(rows: Iterable[tuple[int, MixIntensity]], out: Path) -> int:
    """``Time, Carbon Intensity, Renewable Percentage`` (the ``*_ci.csv`` layout plus renewables)."""
    n = 0
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Time", "Carbon Intensity", "Renewable Percentage"])
        for ts, result in rows:
            writer.writerow([format_time(ts), f"{result.carbon_gco2_per_kwh:.6f}", f"{result.renewable_pct:.4f}"])
            n += 1
    return n


# -- the Transparency Platform API (XML) ---------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in elem if _local(c.tag) == name), None)


def _text(elem: ET.Element, name: str) -> str | None:
    c = _child(elem, name)
    return c.text.strip() if c is not None and c.text else None


def parse_a75(xml_text: str) -> list[tuple[int, dict[str, float]]]:
    """Mixes by time from an A75 ``GL_MarketDocument``. A series with an ``outBiddingZone`` is consumption
    (pumped storage pumping) and counts negative; curve type A03 repeats a value until the next position."""
    root = ET.fromstring(xml_text)
    if _local(root.tag) == "Acknowledgement_MarketDocument":
        reason = next((_text(r, "text") for r in root.iter() if _local(r.tag) == "Reason"), None)
        raise EntsoeError(f"ENTSO-E answered with an acknowledgement instead of data: {reason or 'no reason given'}")
    if _local(root.tag) != "GL_MarketDocument":
        raise EntsoeError(f"not an A75 GL_MarketDocument: root element {_local(root.tag)!r}")
    mixes: dict[int, dict[str, float]] = {}
    for ts_elem in (e for e in root if _local(e.tag) == "TimeSeries"):
        psr = _child(ts_elem, "MktPSRType")
        code = _text(psr, "psrType") if psr is not None else None
        if code not in PSR_TYPES:
            raise EntsoeError(f"unknown PsrType {code!r}")
        fuel = PSR_TYPES[code]
        sign = -1.0 if _child(ts_elem, "outBiddingZone_Domain.mRID") is not None else 1.0
        curve = _text(ts_elem, "curveType") or "A01"
        for period in (e for e in ts_elem if _local(e.tag) == "Period"):
            interval = _child(period, "timeInterval")
            if interval is None:
                raise EntsoeError("a Period without its timeInterval")
            start = parse_time(_text(interval, "start") or "")
            end = parse_time(_text(interval, "end") or "")
            step_ms = RESOLUTIONS[_text(period, "resolution") or "PT60M"] * 60_000
            points = sorted(
                (int(_text(p, "position") or 0), float(_text(p, "quantity") or "nan"))
                for p in period
                if _local(p.tag) == "Point"
            )
            count = (end - start) // step_ms
            values: dict[int, float] = dict(points)
            last = None
            for position in range(1, count + 1):
                if position in values:
                    last = values[position]
                elif curve != "A03":
                    continue  # A01: a missing point is a gap
                if last is None or not math.isfinite(last):
                    continue
                ts = start + (position - 1) * step_ms
                mix = mixes.setdefault(ts, {})
                mix[fuel] = mix.get(fuel, 0.0) + sign * last
    return sorted(mixes.items())


class EntsoeClient:
    """Fetches A75 documents for a zone and a period (security token from the settings)."""

    def __init__(self, settings: GridSourceSettings, client: httpx.Client | None = None) -> None:
        if not settings.entsoe_token:
            raise EntsoeError("no ENTSO-E security token: set TOOGREEN_GRID__ENTSOE_TOKEN")
        self.settings = settings
        self.http = client or httpx.Client(timeout=settings.http_timeout_s)

    @retry(
        retry=retry_if_exception_type(httpx.TransportError),
        wait=wait_exponential(multiplier=0.5, max=20),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    def fetch_generation(self, zone: str, start: datetime, end: datetime) -> list[tuple[int, dict[str, float]]]:
        eic = require_zone(zone).entsoe_eic
        if eic is None:
            raise EntsoeError(f"zone {zone!r} is not an ENTSO-E bidding zone")
        fmt = "%Y%m%d%H%M"
        response = self.http.get(
            self.settings.entsoe_api_base,
            params={
                "securityToken": self.settings.entsoe_token,
                "documentType": "A75",
                "processType": "A16",
                "in_Domain": eic,
                "periodStart": start.astimezone(UTC).strftime(fmt),
                "periodEnd": end.astimezone(UTC).strftime(fmt),
            },
        )
        if response.status_code == 401:
            raise EntsoeError("ENTSO-E refused the security token (401)")
        if response.status_code >= 400 and "Acknowledgement" not in response.text:
            raise EntsoeError(f"ENTSO-E answered {response.status_code}: {response.text[:300]}")
        return parse_a75(response.text)


__all__ = ["EntsoeError", "IntensityPoint", "format_time", "parse_time", "read_intensity_csv"]
