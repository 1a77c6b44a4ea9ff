"""Shared fixtures: settings, the real data sets (skipped with a reason where absent). Builders of records and
events are in ``tests/builders.py``."""

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
