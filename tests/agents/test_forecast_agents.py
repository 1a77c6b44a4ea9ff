"""Forecasts in the worker: the latest per zone kept from ``grid.forecasts`` (bad ones dead-lettered), and the
router deferring a submission to the cleaner window one shows, with the values it used."""

from __future__ import annotations

import pytest

import streams.agents as agents
from streams import faust_private
from streams.app import queued_workload_table, workload_state_table, zone_forecast_table
from streams.emit import RecordingEmitter
from tests.agents.harness import TABLES, clear_tables, feed_fleet
from tests.builders import now_ms
from toogreen.codec import encode
from toogreen.domain.forecast import HOUR_MS, Forecast, ForecastPoint
from toogreen.domain.lifecycle import WorkloadState
from toogreen.submission import submission_event

ZONES = ("FR", "DE", "ES", "PT", "NL", "BE", "IT", "GB", "US-CAL-CISO", "US-NY-NYIS", "US-TEX-ERCO")


@pytest.fixture(autouse=True)
def recorder(monkeypatch):
    clear_tables((*TABLES, zone_forecast_table))
    rec = RecordingEmitter()
    monkeypatch.setattr(agents, "emitter", rec)
    yield rec
    faust_private.table_data(zone_forecast_table).clear()


def forecast(zone: str, issued: int, values: list[float]) -> Forecast:
    start = issued - issued % HOUR_MS
    points = tuple(ForecastPoint(start + i * HOUR_MS, v, v * 0.9, v * 1.1) for i, v in enumerate(values))
    return Forecast(zone, issued, HOUR_MS, points, "ets", "statsmodels", 0.8)


async def test_the_latest_forecast_per_zone_is_kept_and_bad_ones_are_dead_lettered(recorder):
    ts = now_ms()
    newer, older = forecast("GB", ts, [200.0] * 36), forecast("GB", ts - 6 * HOUR_MS, [100.0] * 36)
    broken = {**forecast("FR", ts, [50.0]).to_record(), "points": [
        {"ts_ms": ts, "mean_gco2_per_kwh": 50.0, "low_gco2_per_kwh": 60.0, "high_gco2_per_kwh": 70.0}]}  # fmt: skip
    async with agents.zone_forecasts.test_context() as agent:
        await agent.put(encode("grid.forecasts", newer.to_record()), key=b"GB")
        await agent.put(encode("grid.forecasts", older.to_record()), key=b"GB")  # late: not kept
        await agent.put(b"\x00garbage", key=b"FR")
        await agent.put(encode("grid.forecasts", broken), key=b"FR")
    assert zone_forecast_table["GB"] == newer and "FR" not in zone_forecast_table
    reasons = [d["reason"] for d in recorder.dead]
    assert len(reasons) == 2 and "single-object" in reasons[0] and "low <= mean <= high" in reasons[1]


async def test_the_router_defers_to_the_window_a_forecast_shows_and_records_why(recorder, monkeypatch):
    monkeypatch.setattr(agents.settings.forecast.deferral, "enabled", True)
    ts = now_ms()
    await feed_fleet(ts)  # every zone at 300 gCO2eq/kWh now
    async with agents.zone_forecasts.test_context() as agent:
        for zone in ZONES:  # 300 for three more hours, then a clean night
            f = forecast(zone, ts, [300.0] * 4 + [60.0] * 12 + [300.0] * 20)
            await agent.put(encode("grid.forecasts", f.to_record()), key=zone.encode())
    request = {"name": "j", "workload_type": "training", "image": "img", "vram_mb": 20_000, "expected_hours": 4.0,
               "deadline_ms": ts + 24 * HOUR_MS}  # fmt: skip
    async with agents.workloads.test_context() as agent:
        await agent.put(encode("workload.events", submission_event(request, "w1", ts)), key=b"w1")
    [decision] = recorder.on("routing.decisions")
    assert decision["type"] == "deferred" and decision["chosen_node_id"] is None
    assert decision["reason"].startswith("deferred until ") and "gCO2eq/kWh against" in decision["reason"]
    wait = decision["deferral"]
    assert wait["until_ms"] == ts - ts % HOUR_MS + 4 * HOUR_MS and wait["window_gco2_per_kwh"] == 60.0
    assert [p["mean_gco2_per_kwh"] for p in wait["points"]] == [60.0] * 4 and len(wait["forecasts_used"]) >= 1
    assert [e["type"] for e in recorder.on("workload.events")] == ["queued"]
    assert recorder.on("node.commands") == []
    state = workload_state_table["w1"]
    assert state.state is WorkloadState.QUEUED and state.deferred_until_ms == wait["until_ms"]
    assert "w1" in queued_workload_table
