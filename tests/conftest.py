"""Shared fixtures: settings, the real data sets (skipped with a reason where absent), factories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from toogreen.settings import Settings, get_settings

# Keys the tests create (receipt signing, Solana payer) go to a scratch folder, never into the checkout.
_SCRATCH = Path(tempfile.mkdtemp(prefix="toogreen-tests-"))
os.environ.setdefault("TOOGREEN_SETTLEMENT__SIGNING_KEY_PATH", str(_SCRATCH / "signing.pem"))
os.environ.setdefault("TOOGREEN_SETTLEMENT__SOLANA_PAYER_KEY_PATH", str(_SCRATCH / "payer.json"))


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
