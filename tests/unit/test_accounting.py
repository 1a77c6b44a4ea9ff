"""Energy and carbon accounting, receipts and their signatures, settlement."""

import copy
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.nvml import read_trace, to_telemetry
from tests.builders import zone_view
from toogreen.domain.accounting import Slot, accrue, accrue_energy, energy_between_j, totals
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.receipts import canonical_bytes, receipt_hash
from toogreen.domain.records import (
    NodeRegistration,
    NodeState,
    NodeTelemetry,
    RunningShare,
    TelemetrySample,
    Workload,
)
from toogreen.domain.settlement import settle
from toogreen.settings import Settings
from toogreen.signing import load_or_create_key, load_public_key, public_key_hex, sign_receipt, verify_receipt

SLOT = Slot("n1", "FR", pue=1.2, share=1.0, carbon_gco2_per_kwh=50.0, window_start_ms=0)


def test_counter_preferred_over_power_and_fallback_when_missing_or_reset():
    a = {"ts_ms": 0, "power_w": 100.0, "energy_j": 1000.0}
    b = {"ts_ms": 10_000, "power_w": 300.0, "energy_j": 3500.0}
    assert energy_between_j(a, b) == (2500.0, "nvml_energy_counter")
    assert energy_between_j({**a, "energy_j": None}, b) == (2000.0, "integrated_power")
    assert energy_between_j(a, {**b, "energy_j": 10.0}) == (2000.0, "integrated_power")  # counter reset
    assert energy_between_j(b, a)[0] == 0.0


def test_h100_trace_energy_matches_its_counter_within_1_percent(data_dir):
    samples = [to_telemetry("h100", s, "replay") for s in read_trace(data_dir / "nvml" / "h100_trace.jsonl")]
    intervals: list = []
    for prev, cur in itertools.pairwise(samples):
        energy, method = energy_between_j(prev, cur)
        intervals = accrue(intervals, SLOT, prev["ts_ms"], cur["ts_ms"], energy, method)
    kwh = totals(intervals, 300.0).kwh
    counter_kwh = (samples[-1]["energy_j"] - samples[0]["energy_j"]) / 3.6e6 * 1.2
    assert kwh == pytest.approx(counter_kwh, rel=0.01)
    # and the integrated power agrees with the counter too (the README's cross-check)
    integrated = sum(
        0.5 * (a["power_w"] + b["power_w"]) * (b["ts_ms"] - a["ts_ms"]) / 1000 for a, b in itertools.pairwise(samples)
    )
    assert integrated / 3.6e6 * 1.2 == pytest.approx(counter_kwh, rel=0.02)
    assert len(intervals) == 1 and intervals[0].methods == ("nvml_energy_counter",)


def test_intervals_split_on_zone_window_and_node_and_share_applies():
    i = accrue([], SLOT, 0, 1000, 3.6e6, "c")
    i = accrue(i, SLOT, 1000, 2000, 3.6e6, "c")
    i = accrue(i, Slot("n1", "FR", 1.2, 1.0, 100.0, window_start_ms=300_000), 2000, 3000, 3.6e6, "c")
    i = accrue(i, Slot("n2", "DE", 1.0, 0.5, 400.0, 300_000, market_gco2_per_kwh=10.0), 3000, 4000, 3.6e6, "c")
    assert [(x.node_id, x.zone) for x in i] == [("n1", "FR"), ("n1", "FR"), ("n2", "DE")]
    t = totals(i, baseline_gco2_per_kwh=300.0)
    assert t.kwh == pytest.approx(1.2 * 3 + 0.5)
    assert t.gco2_actual == pytest.approx(2.4 * 50 + 1.2 * 100 + 0.5 * 400)
    assert t.gco2_market_based == pytest.approx(5.0) and t.gco2_saved == pytest.approx(t.gco2_baseline - t.gco2_actual)
    assert t.gpu_hours == pytest.approx(3.5 / 3600)


def _receipt(tmp_path):
    key = load_or_create_key(tmp_path / "k.pem")
    intervals = accrue([], SLOT, 0, 3_600_000, 3.6e6, "nvml_energy_counter")
    state = Workload(workload_id="w1", state=WorkloadState.COMPLETED, price_eur_per_gpu_hour=2.4)
    receipt, billing = settle(state, intervals, 3_600_000, Settings())
    return key, sign_receipt(receipt, key), billing


def test_receipt_and_billing(tmp_path):
    _key, receipt, billing = _receipt(tmp_path)
    assert receipt["kwh"] == 1.2 and receipt["gco2_actual"] == 60.0 and receipt["gco2_baseline"] == 360.0
    assert receipt["gco2_saved"] == 300.0 and "location-based" in receipt["method"]
    assert billing["gpu_hours"] == 1.0 and (billing["charge"], billing["fee"], billing["payout"]) == (2.4, 0.36, 2.04)


def test_key_file_is_created_once_and_private(tmp_path):
    key = load_or_create_key(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    assert public_key_hex(load_or_create_key(tmp_path / "k.pem")) == public_key_hex(key)


def test_signed_receipt_verifies_with_only_the_public_key(tmp_path):
    key, receipt, _ = _receipt(tmp_path)
    assert verify_receipt(receipt, load_public_key(public_key_hex(key))).valid


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))
    else:
        yield prefix


def test_tampering_with_any_field_fails_verification(tmp_path):
    key, receipt, _ = _receipt(tmp_path)
    trusted = key.public_key()
    paths = list(_paths(receipt))
    assert len(paths) > 15
    for path in paths:
        forged = copy.deepcopy(receipt)
        target = forged
        for step in path[:-1]:
            target = target[step]
        value = target[path[-1]]
        if isinstance(value, bool) or value is None:
            target[path[-1]] = 1.0
        elif isinstance(value, int | float):
            target[path[-1]] = value + 1
        else:
            target[path[-1]] = value[:-1] + ("0" if not value.endswith("0") else "1") if value else "x"
        result = verify_receipt(forged, trusted)
        assert not result.valid, f"tampering with {path} went unnoticed"
    other = load_or_create_key(tmp_path / "other.pem")
    assert "not the platform's" in verify_receipt(sign_receipt(receipt, other), trusted).failed_check


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=5))
def test_canonical_encoding_ignores_key_order(d):
    assert canonical_bytes(dict(reversed(list(d.items())))) == canonical_bytes(d)


def test_receipt_hash_changes_with_the_signature(tmp_path):
    _key, receipt, _ = _receipt(tmp_path)
    assert receipt_hash(receipt) != receipt_hash({**receipt, "signature": "00" + receipt["signature"][2:]})


REG = NodeRegistration(node_id="n1", provider="p", node_type="recycler", gpu_model="H100", vram_mb=81_920, zone="FR",
                       lat=0.0, lng=0.0, pue=1.2, declared_carbon_gco2_per_kwh=10.0)  # fmt: skip
BEFORE = NodeState(
    registration=REG,
    telemetry=NodeTelemetry(last_seen_ms=0, util_rolling_pct=50.0, power_w=100.0, energy_j=0.0, mem_used_mb=0,
                            mem_total_mb=81_920, health="healthy"),
)  # fmt: skip


def _sample(ts_ms: int, energy_j: float | None) -> TelemetrySample:
    return TelemetrySample(node_id="n1", ts_ms=ts_ms, sm_util_pct=90.0, mem_used_mb=1, mem_total_mb=81_920,
                           power_w=100.0, energy_j=energy_j)  # fmt: skip


def test_accrued_energy_is_shared_and_pro_rated_from_when_each_workload_started():
    zone = zone_view("FR", 50.0, at_ms=3_600_000)
    running = {"a": RunningShare(fraction=0.0, since_ms=0), "b": RunningShare(fraction=0.0, since_ms=1_800_000)}
    out = accrue_energy(running, BEFORE, _sample(3_600_000, 3.6e6), zone, {})
    a, b = out["a"][0], out["b"][0]
    # a alone for the first half, the two equally for the second: all the node drew is someone's
    assert a.kwh == pytest.approx((0.5 + 0.5 * 0.5) * 1.2) and b.kwh == pytest.approx(0.5 * 0.5 * 1.2)
    assert (a.start_ms, b.start_ms) == (0, 1_800_000) and a.methods == ("nvml_energy_counter",)
    assert a.market_gco2 == pytest.approx(a.kwh * 10.0)  # a recycler's declared source, beside the grid's
    assert accrue_energy(running, BEFORE, _sample(0, 0.0), zone, {}) == {}  # not newer than what was seen
    assert accrue_energy(running, None, _sample(3_600_000, 3.6e6), zone, {}) == {}
    assert accrue_energy(running, BEFORE, _sample(3_600_000, 3.6e6), None, {}) == {}  # no window for the zone yet
