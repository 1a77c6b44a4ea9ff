"""Shared fixtures: settings, the real data sets (skipped with a reason where absent), factories."""

from __future__ import annotations

from pathlib import Path

import pytest

from toogreen.settings import Settings, get_settings


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = get_settings().data_dir
    if not path.is_dir():
        pytest.skip(f"the shared data sets are not at {path} (set TOOGREEN_DATA_DIR); CI has them")
    return path


def grid_reading(zone: str = "FR", ts_ms: int = 1_700_000_000_000, carbon: float = 60.0, **extra: object) -> dict:
    return {
        "zone": zone,
        "ts_ms": ts_ms,
        "carbon_intensity_gco2_per_kwh": carbon,
        "carbon_intensity_kind": "lifecycle",
        "carbon_intensity_basis": "average",
        "renewable_pct": extra.pop("renewable_pct", 70.0),
        "price": extra.pop("price", 50.0),
        "price_unit": "EUR/MWh",
        "price_market": "day_ahead",
        "curtailment_mw": extra.pop("curtailment_mw", None),
        "source": "test",
        "estimated": False,
        **extra,
    }
