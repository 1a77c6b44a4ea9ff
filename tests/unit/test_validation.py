"""Semantic checks Avro cannot make."""

import math

import pytest

from tests.builders import grid_reading
from toogreen.domain.validation import validate_grid_reading, validate_registration, validate_telemetry


def test_good_reading_passes():
    assert validate_grid_reading(grid_reading()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"zone": "XX"}, "unknown zone 'XX': known zones are"),
        ({"carbon_intensity_gco2_per_kwh": math.nan}, "not a finite number"),
        ({"carbon_intensity_gco2_per_kwh": -1.0}, "negative carbon"),
        ({"renewable_pct": 140.0}, "outside 0-100"),
        ({"curtailment_mw": -3.0}, "negative curtailment"),
        ({"price": math.inf}, "not a finite number"),
    ],
)
def test_bad_readings_say_what_is_wrong(change, problem):
    problems = validate_grid_reading({**grid_reading(), **change})
    assert any(problem in p for p in problems), problems


def _telemetry(**change):
    base = {"node_id": "n", "ts_ms": 1, "sm_util_pct": 50.0, "mem_used_mb": 10, "mem_total_mb": 100, "power_w": 300.0,
            "energy_j": 10.0, "temperature_c": 50.0}  # fmt: skip
    return {**base, **change}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"power_w": -5.0}, "negative power_w"),
        ({"power_w": math.nan}, "not a finite number"),
        ({"sm_util_pct": 101.0}, "outside 0-100"),
        ({"mem_total_mb": 0}, "memory"),
        ({"energy_j": -1.0}, "negative energy_j"),
    ],
)
def test_bad_telemetry(change, problem):
    assert any(problem in p for p in validate_telemetry(_telemetry(**change)))


def test_good_telemetry():
    assert validate_telemetry(_telemetry()) == []


def test_registration_needs_a_known_zone_and_sane_pue():
    reg = {"zone": "FR", "lat": 1.0, "lng": 2.0, "pue": 1.1, "vram_mb": 100, "declared_carbon_gco2_per_kwh": None}
    assert validate_registration(reg) == []
    assert any("pue" in p for p in validate_registration({**reg, "pue": 0.5}))
    assert any("unknown zone" in p for p in validate_registration({**reg, "zone": "ZZ"}))
