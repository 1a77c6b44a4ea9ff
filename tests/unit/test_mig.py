"""MIG profile tables and slice choice."""

import json
from pathlib import Path

import pytest

from toogreen.domain.mig import COMPUTE_SLICES, MIG_PROFILES, choose_profile, compute_fraction, profile_by_name

LIVE_H200 = Path(__file__).resolve().parents[2] / "bench-results" / "nvml" / "nvml_live_static.json"


@pytest.mark.parametrize("model", ["H100", "H200"])
def test_table_is_the_one_nvml_reported(model, data_dir):
    path = data_dir / "nvml" / "h100_static.json" if model == "H100" else LIVE_H200
    static = json.loads(path.read_text())
    # profile 7 (1g.*+me, the media-extension variant) shares 1g's compute and memory: not offered apart
    reported = {(p["slice_count"], p["multiprocessor_count"], p["memory_mb"], p["instance_count"])
                for p in static["gpu_instance_profiles"] if p["profile"] != 7}  # fmt: skip
    ours = {(p.slices, p.sms, p.memory_mb, p.instances) for p in MIG_PROFILES[model]}
    assert ours == reported


def test_smallest_fitting_slice_and_the_card_limit():
    assert choose_profile("H100", 8000, {}).name == "1g.10gb"
    assert choose_profile("H100", 15000, {}).name == "1g.20gb"
    assert choose_profile("H100", 30000, {}).name == "3g.40gb"
    assert choose_profile("H100", 90000, {}) is None  # never larger than the card
    assert choose_profile("H100", 30000, {"4g.40gb": 1}).name == "3g.40gb"
    assert choose_profile("H100", 30000, {"4g.40gb": 1, "3g.40gb": 1}) is None  # 7 slices used
    assert choose_profile("H100", 8000, {"1g.10gb": 7}) is None
    assert choose_profile("RTX 4090", 8000, {}) is None
    assert choose_profile("H200", 30000, {}).name == "1g.35gb"
    assert choose_profile("H200", 140000, {}).name == "7g.141gb"


def test_compute_fraction_is_the_share_of_sms():
    assert compute_fraction("H100", profile_by_name("H100", "7g.80gb")) == 1.0
    assert compute_fraction("H100", profile_by_name("H100", "1g.10gb")) == 16 / 132
    assert all(p.slices <= COMPUTE_SLICES for table in MIG_PROFILES.values() for p in table)
