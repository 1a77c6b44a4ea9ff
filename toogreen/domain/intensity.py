"""Carbon intensity series (the ``Time, Carbon Intensity`` CSVs) and the intensity and renewable share of a
generation mix (ENTSO-E fuel types), per the method the shared data's authors published: each generation type ×
its lifecycle factor, each import × the neighbour's average factor, pumped storage left out, waste counted as
energy without emissions, intensity = Σ(MW × factor) / Σ MW.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

PUMPED_STORAGE = "Hydro Pumped Storage"


class UnknownFuelError(ValueError):
    pass


@dataclass(frozen=True)
class MixIntensity:
    carbon_gco2_per_kwh: float
    renewable_pct: float
    generation_mw: float
    imports_mw: float
    ignored: dict[str, float] = field(default_factory=dict)  # what was left out, and why it is not counted


def mix_intensity(
    mix: Mapping[str, float],
    fuel_factors: Mapping[str, float],
    import_factors: Mapping[str, float],
    renewable_fuels: frozenset[str] | set[str],
    include_imports: bool = True,
) -> MixIntensity | None:
    """Intensity of a mix ``{column: MW}``; fuel columns use ``fuel_factors``, neighbour codes
    ``import_factors``. None when there is no generation at all (a gap)."""
    emissions = energy = renewable = generation = imports = 0.0
    ignored: dict[str, float] = {}
    for column, mw in mix.items():
        if column == PUMPED_STORAGE:
            ignored[column] = mw
        elif column in fuel_factors:
            if mw < 0:  # a generation type below zero is consumption (self-use): not supply
                ignored[column] = mw
                continue
            emissions += mw * fuel_factors[column]
            energy += mw
            generation += mw
            if column in renewable_fuels:
                renewable += mw
        elif column in import_factors:
            if mw <= 0 or not include_imports:  # exports (negative) are not consumed here
                if mw:
                    ignored[column] = mw
                continue
            emissions += mw * import_factors[column]
            energy += mw
            imports += mw
        else:
            known = ", ".join(sorted([*fuel_factors, *import_factors]))
            raise UnknownFuelError(f"unknown generation or neighbour column {column!r}: known are {known}")
    if energy <= 0 or generation <= 0:
        return None
    return MixIntensity(
        carbon_gco2_per_kwh=emissions / energy,
        renewable_pct=100.0 * renewable / generation,
        generation_mw=generation,
        imports_mw=imports,
        ignored=ignored,
    )


class GridDataError(ValueError):
    """A grid data file or answer that cannot be used (says which and why)."""


def parse_time(text: str) -> int:
    """ms since the epoch; naive times are UTC (the shared data's convention)."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def format_time(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class IntensityPoint:
    ts_ms: int
    carbon_gco2_per_kwh: float
    renewable_pct: float | None = None
    price: float | None = None


def read_intensity_csv(path: Path) -> list[IntensityPoint]:
    """A ``Time, Carbon Intensity`` CSV (optional ``Renewable Percentage``, ``Price``), time-ordered, one point per
    timestamp."""
    points: dict[int, IntensityPoint] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                ts = parse_time(row["Time"])
                ci = float(row["Carbon Intensity"])
            except (KeyError, ValueError) as exc:
                raise GridDataError(f"{path}: needs columns 'Time, Carbon Intensity' ({exc})") from exc
            if not math.isfinite(ci) or ts in points:
                continue
            ren = row.get("Renewable Percentage")
            price = row.get("Price")
            points[ts] = IntensityPoint(ts, ci, float(ren) if ren else None, float(price) if price else None)
    return [points[t] for t in sorted(points)]
