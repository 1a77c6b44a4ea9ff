"""Semantic checks that Avro cannot express (NaN, negative power, unknown zone, impossible shares).

Each function returns the list of problems; an empty list means the record may be applied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from toogreen.domain.zones import ZONES


def _bad_number(value: Any) -> bool:
    return value is not None and (not isinstance(value, int | float) or not math.isfinite(value))


def _check_numbers(record: Mapping[str, Any], fields: Iterable[str]) -> list[str]:
    return [f"{f} is not a finite number ({record[f]!r})" for f in fields if _bad_number(record.get(f))]


def validate_grid_reading(record: Mapping[str, Any], known_zones: Iterable[str] = ZONES) -> list[str]:
    problems = _check_numbers(record, ("carbon_intensity_gco2_per_kwh", "renewable_pct", "price", "curtailment_mw"))
    zones = set(known_zones)
    if record["zone"] not in zones:
        problems.append(f"unknown zone {record['zone']!r}: known zones are {', '.join(sorted(zones))}")
    ci: Any = record.get("carbon_intensity_gco2_per_kwh")
    if not _bad_number(ci) and ci < 0:
        problems.append(f"negative carbon intensity {ci}")
    ren: Any = record.get("renewable_pct")
    if ren is not None and not _bad_number(ren) and not 0 <= ren <= 100:
        problems.append(f"renewable_pct {ren} outside 0-100")
    cur: Any = record.get("curtailment_mw")
    if cur is not None and not _bad_number(cur) and cur < 0:
        problems.append(f"negative curtailment_mw {cur}")
    return problems


def validate_telemetry(record: Mapping[str, Any]) -> list[str]:
    problems = _check_numbers(record, ("sm_util_pct", "power_w", "energy_j", "temperature_c"))
    if not _bad_number(record.get("power_w")) and record["power_w"] < 0:
        problems.append(f"negative power_w {record['power_w']}")
    util: Any = record.get("sm_util_pct")
    if not _bad_number(util) and not 0 <= util <= 100:
        problems.append(f"sm_util_pct {util} outside 0-100")
    if record.get("mem_used_mb", 0) < 0 or record.get("mem_total_mb", 0) <= 0:
        problems.append("memory figures must be mem_used_mb >= 0 and mem_total_mb > 0")
    if record.get("energy_j") is not None and not _bad_number(record["energy_j"]) and record["energy_j"] < 0:
        problems.append(f"negative energy_j {record['energy_j']}")
    return problems


def validate_registration(record: Mapping[str, Any], known_zones: Iterable[str] = ZONES) -> list[str]:
    problems = _check_numbers(record, ("lat", "lng", "pue", "declared_carbon_gco2_per_kwh"))
    zones = set(known_zones)
    if record["zone"] not in zones:
        problems.append(f"unknown zone {record['zone']!r}: known zones are {', '.join(sorted(zones))}")
    if not _bad_number(record.get("pue")) and record["pue"] < 1.0:
        problems.append(f"pue {record['pue']} below 1.0")
    if record.get("vram_mb", 0) <= 0:
        problems.append("vram_mb must be positive")
    return problems


def validate_workload_request(request: Mapping[str, Any]) -> list[str]:
    problems = _check_numbers(request, ("expected_hours", "max_carbon_gco2_kwh", "budget_eur", "checkpoint_gb"))
    if request.get("vram_mb", 0) <= 0:
        problems.append("vram_mb must be positive")
    hours: Any = request.get("expected_hours")
    if not _bad_number(hours) and hours <= 0:
        problems.append("expected_hours must be positive")
    if not request.get("image") and not request.get("command"):
        problems.append("one of image or command is required")
    return problems
