"""Settlement from what ran: a workload's energy runs up to its stop, and while it runs every metering interval
gets its billing record (ids deterministic); the final record bills the rest, so they all add up to the receipt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import zone_view
from toogreen.domain.accounting import accrue_energy, metering_pieces, totals
from toogreen.domain.records import NodeKind, NodeRegistration, NodeState, NodeTelemetry, RunningShare, TelemetrySample
from toogreen.domain.settlement import interim_billing, metering_boundaries, settle
from toogreen.settings import Settings

REG = NodeRegistration(node_id="n1", provider="p", node_type=NodeKind.DATACENTER, gpu_model="H100", vram_mb=81_920,
                       zone="FR", lat=0.0, lng=0.0, pue=1.5)  # fmt: skip
ZONE = zone_view("FR", 50.0, at_ms=0)
METER_MS = 10_000


def settings(metering_s: float = METER_MS / 1000) -> Settings:
    s = Settings()
    s.settlement.metering_interval_s = metering_s
    return s


def node_at(ts_ms: int, energy_j: float) -> NodeState:
    return NodeState(registration=REG, telemetry=NodeTelemetry(
        last_seen_ms=ts_ms, util_rolling_pct=90.0, power_w=300.0, energy_j=energy_j, mem_used_mb=0,
        mem_total_mb=81_920, health="healthy"))  # fmt: skip


def sample(ts_ms: int) -> TelemetrySample:
    return TelemetrySample(node_id="n1", ts_ms=ts_ms, sm_util_pct=90.0, mem_used_mb=1, mem_total_mb=81_920,
                           power_w=300.0, energy_j=300.0 * ts_ms / 1000)  # fmt: skip


def test_energy_is_the_workloads_up_to_its_stop_and_not_after():
    running = {"a": RunningShare(fraction=0.0, since_ms=0, until_ms=500), "b": RunningShare(fraction=0.0, since_ms=0)}
    out = accrue_energy(running, node_at(0, 0.0), sample(1000), ZONE, {})
    # a stopped half-way through the sample: half the span, split with b while both ran; b alone after
    assert out["a"][0].end_ms == 500 and out["b"][0].end_ms == 1000
    assert out["a"][0].kwh == pytest.approx(300.0 * 0.5 / 2 * 1.5 / 3.6e6)
    assert out["b"][0].kwh == pytest.approx(300.0 * (0.5 / 2 + 0.5) * 1.5 / 3.6e6)
    assert out["b"][0].gpu_ms == pytest.approx(500 / 2 + 500)
    assert accrue_energy({"a": running["a"]}, node_at(1000, 300.0), sample(2000), ZONE, {}) == {}  # after its stop


def test_no_interval_spans_a_metering_boundary():
    assert metering_pieces(5_000, 25_000, METER_MS) == [(5_000, 10_000), (10_000, 20_000), (20_000, 25_000)]
    assert metering_pieces(5_000, 25_000, 0) == [(5_000, 25_000)]
    running = {"a": RunningShare(fraction=0.0, since_ms=0)}
    intervals: list = []
    before = node_at(0, 0.0)
    for ts in range(3_000, 31_000, 3_000):  # a sample every 3 s, across three boundaries
        intervals = accrue_energy(running, before, sample(ts), ZONE, {"a": intervals}, METER_MS)["a"]
        before = node_at(ts, 300.0 * ts / 1000)
    assert [(i.start_ms, i.end_ms) for i in intervals] == [(0, 10_000), (10_000, 20_000), (20_000, 30_000)]
    assert totals(intervals, 300.0).kwh == pytest.approx(300.0 * 30 * 1.5 / 3.6e6)


def test_metering_boundaries_a_sample_closes():
    assert metering_boundaries(9_000, 10_000, METER_MS) == [10_000]
    assert metering_boundaries(10_000, 19_999, METER_MS) == []
    assert metering_boundaries(5_000, 31_000, METER_MS) == [10_000, 20_000, 30_000]
    assert metering_boundaries(5_000, 31_000, 0) == []


@given(stop_s=st.integers(min_value=1, max_value=59), step_s=st.integers(min_value=1, max_value=7),
       price=st.floats(min_value=0.5, max_value=9.0))  # fmt: skip
def test_interim_records_and_the_final_one_add_up_to_the_receipt_and_a_replay_yields_the_same(stop_s, step_s, price):
    def run() -> tuple[list[dict], dict, dict]:
        share = RunningShare(fraction=0.0, since_ms=0, until_ms=stop_s * 1000, price_eur_per_gpu_hour=price)
        intervals: list = []
        before, records = node_at(0, 0.0), []
        for ts in range(step_s * 1000, (stop_s + step_s) * 1000 + 1, step_s * 1000):
            intervals = accrue_energy({"a": share}, before, sample(ts), ZONE, {"a": intervals}, METER_MS).get(
                "a", intervals)  # fmt: skip
            if ts >= stop_s * 1000:
                break  # handed over: its remainder is the final record's
            for boundary in metering_boundaries(before.telemetry.last_seen_ms, ts, METER_MS):  # type: ignore[union-attr]
                record, intervals = interim_billing("w1", "n1", intervals, boundary, price, settings())
                if record is not None:
                    records.append(record)
            before = node_at(ts, 300.0 * ts / 1000)
        settled = settle({"workload_id": "w1", "price_eur_per_gpu_hour": price}, intervals, 99_000, settings())
        assert settled is not None
        return records, *settled

    interim, receipt, final = run()
    every = [*interim, final]
    assert len({r["billing_id"] for r in every}) == len(every)
    assert all(r["billing_id"].startswith("bill-w1-n1-") for r in interim) and final["billing_id"] == "bill-w1-final"
    assert final["metering_ids"] == [*sorted(r["billing_id"] for r in interim), "bill-w1-final"]
    assert sum(r["gpu_hours"] for r in every) == pytest.approx(stop_s / 3600, abs=1e-5)  # up to the stop
    assert sum(r["kwh"] for r in every) == pytest.approx(receipt["kwh"], abs=1e-5)
    assert receipt["kwh"] == pytest.approx(300.0 * stop_s * 1.5 / 3.6e6, rel=1e-6)
    assert sum(r["charge"] for r in every) == pytest.approx(price * stop_s / 3600, abs=0.01 * len(every))
    assert run() == (interim, receipt, final)  # deterministic: a replay sends the same records, ids and all


def test_an_interval_billed_already_is_not_billed_again_and_without_metering_nothing_is_interim():
    running = {"a": RunningShare(fraction=0.0, since_ms=0)}
    intervals = accrue_energy(running, node_at(0, 0.0), sample(12_000), ZONE, {}, METER_MS)["a"]
    record, marked = interim_billing("w1", "n1", intervals, 10_000, 2.0, settings())
    assert record is not None and record["gpu_hours"] == pytest.approx(10 / 3600, abs=1e-6)
    assert [i.billing_id for i in marked] == ["bill-w1-n1-10000", None]
    assert interim_billing("w1", "n1", marked, 10_000, 2.0, settings()) == (None, marked)
    assert interim_billing("w1", "n2", intervals, 10_000, 2.0, settings())[0] is None  # drawn on another node
    assert interim_billing("w1", "n1", intervals, 10_000, 2.0, settings(0))[0] is None


@given(since_s=st.integers(1, 8), run_s=st.integers(1, 6), heard_at_s=st.integers(0, 6))
def test_a_share_that_reaches_the_partition_late_still_gets_what_it_drew_since_it_started(
    since_s: int, run_s: int, heard_at_s: int
):
    """A sample a second, from 0 s to 20 s. The workload ran from ``since_s`` for ``run_s`` seconds; the node's
    partition heard of it (its share, stopped or not) only ``heard_at_s`` seconds after it stopped, several
    samples on. With the node's recent samples it gets exactly what it drew, as if its share had come at once."""
    from toogreen.domain.accounting import PowerPoint

    until_ms = (since_s + run_s) * 1000
    share = RunningShare(fraction=0.0, since_ms=since_s * 1000, until_ms=until_ms)
    running = {"a": share}
    history: list[PowerPoint] = []
    on_time: list = []
    late: list = []
    heard_ms = until_ms + heard_at_s * 1000
    for ts in range(1_000, 20_001, 1_000):
        before = node_at(ts - 1_000, 300.0 * (ts - 1_000) / 1000)
        on_time = accrue_energy(running, before, sample(ts), ZONE, {"a": on_time}).get("a", on_time)
        if ts >= heard_ms:
            late = accrue_energy(running, before, sample(ts), ZONE, {"a": late}, history=tuple(history)).get("a", late)
        history.append(PowerPoint(ts - 1_000, 300.0, 300.0 * (ts - 1_000) / 1000))
    assert totals(late, 300.0).kwh == pytest.approx(totals(on_time, 300.0).kwh)
    assert totals(late, 300.0).kwh == pytest.approx(300.0 * run_s * 1.5 / 3.6e6)
    # samples after its stop add nothing: what it drew is accrued once
    assert accrue_energy(running, node_at(20_000, 6_000.0), sample(21_000), ZONE, {"a": late},
                         history=tuple(history)) == {}  # fmt: skip
