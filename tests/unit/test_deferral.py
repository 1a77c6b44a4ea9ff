"""Waiting as a decision: when a workload waits for a cleaner window, what the decision says, and that a deferral
never costs a deadline that placing now would have met."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toogreen.domain.deferral import decide_deferral, latest_start_ms
from toogreen.domain.forecast import HOUR_MS, Forecast, ForecastPoint
from toogreen.settings import DeferralSettings

T0 = 1_580_515_200_000  # 2020-02-01 00:00 UTC
ON = DeferralSettings(enabled=True)


def forecast(zone: str, values: list[float], band: float = 0.0, issued: int = T0) -> Forecast:
    points = tuple(ForecastPoint(issued + i * HOUR_MS, v, max(v - band, 0.0), v + band) for i, v in enumerate(values))
    return Forecast(zone, issued, HOUR_MS, points, "ets", "statsmodels", 0.8 if band else 0.0)


GB_DIP = forecast("GB", [250.0] * 6 + [100.0] * 6 + [250.0] * 24, band=10.0)


def test_it_waits_for_the_dip_and_says_so_with_the_values_used():
    d = decide_deferral(T0, 4.0, T0 + 24 * HOUR_MS, "GB", 250.0, {"GB": GB_DIP}, ["GB"], ON)
    assert d.defer and d.until_ms == T0 + 6 * HOUR_MS and d.zone == "GB"
    assert d.reason.startswith("deferred until 2020-02-01 06:00 UTC because GB's forecast (ets, issued")
    assert "100.0 ±10.0 gCO2eq/kWh against 250.0 placing now in GB" in d.reason
    assert d.saving_gco2_per_kwh == pytest.approx(150.0) and d.margin_gco2_per_kwh == pytest.approx(12.5 + 5.0)
    assert [p.mean_gco2_per_kwh for p in d.points_used] == [100.0] * 4
    assert d.forecasts_used == (("GB", T0, "ets"),)


def test_it_waits_for_another_zone_s_window_too():
    fr = forecast("FR", [300.0] * 3 + [40.0] * 33)
    d = decide_deferral(T0, 2.0, T0 + 12 * HOUR_MS, "GB", 250.0, {"GB": GB_DIP, "FR": fr}, ["GB", "FR"], ON)
    assert d.defer and d.zone == "FR" and d.until_ms == T0 + 3 * HOUR_MS


@pytest.mark.parametrize(
    ("hours", "deadline_h", "why"),
    [
        (4.0, 4.5, "slack 0.50 h is below"),
        (4.0, None, "no deadline"),
        (4.0, 6.0, "latest start"),  # slack 2 h, but the buffer (1 h + 25 % of 4 h) eats it
    ],
)
def test_no_slack_no_wait(hours, deadline_h, why):
    deadline = None if deadline_h is None else T0 + int(deadline_h * HOUR_MS)
    d = decide_deferral(T0, hours, deadline, "GB", 250.0, {"GB": GB_DIP}, ["GB"], ON)
    assert not d.defer and why in d.reason


def test_an_uncertain_forecast_needs_a_bigger_saving():
    narrow = forecast("GB", [250.0] * 3 + [200.0] * 33, band=10.0)
    wide = forecast("GB", [250.0] * 3 + [200.0] * 33, band=120.0)
    assert decide_deferral(T0, 2.0, T0 + 20 * HOUR_MS, "GB", 250.0, {"GB": narrow}, ["GB"], ON).defer
    d = decide_deferral(T0, 2.0, T0 + 20 * HOUR_MS, "GB", 250.0, {"GB": wide}, ["GB"], ON)
    assert not d.defer and "does not beat the margin 72.5" in d.reason


def test_switched_off_or_without_forecasts_it_places_now():
    off = decide_deferral(T0, 4.0, T0 + 24 * HOUR_MS, "GB", 250.0, {"GB": GB_DIP}, ["GB"], DeferralSettings())
    assert not off.defer and off.reason == "deferral is switched off"
    none = decide_deferral(T0, 4.0, T0 + 24 * HOUR_MS, "GB", 250.0, {}, ["GB"], ON)
    assert not none.defer and "no forecast reaches" in none.reason


def test_the_current_reading_counts_for_the_step_under_way():
    # the forecast thought now would be clean; the grid says otherwise, and the rest of the hour counts at 400
    f = forecast("GB", [100.0] + [150.0] * 35)
    d = decide_deferral(T0 + HOUR_MS // 2, 1.0, T0 + 20 * HOUR_MS, "GB", 400.0, {"GB": f}, ["GB"], ON)
    assert d.now is not None and d.now.mean_gco2_per_kwh == pytest.approx((400 + 150) / 2)
    assert d.defer and d.until_ms == T0 + HOUR_MS


values = st.lists(st.floats(0.0, 800.0, allow_nan=False), min_size=1, max_size=48)


@settings(max_examples=300, deadline=None)
@given(
    gb=values,
    fr=values,
    band=st.floats(0.0, 200.0),
    now_off_min=st.integers(-120, 40 * 60),
    hours=st.floats(0.1, 14.0),
    deadline_after_h=st.one_of(st.none(), st.floats(0.0, 60.0)),
    now_carbon=st.floats(0.0, 800.0),
    buffer_h=st.floats(0.0, 3.0),
    fraction=st.floats(0.0, 0.5),
    green_only=st.booleans(),
    planned_after_h=st.one_of(st.none(), st.floats(0.0, 30.0)),
)
def test_a_deferral_never_costs_a_deadline_that_placing_now_would_meet(
    gb, fr, band, now_off_min, hours, deadline_after_h, now_carbon, buffer_h, fraction, green_only, planned_after_h
):
    now = T0 + now_off_min * 60_000
    deadline = None if deadline_after_h is None else now + int(deadline_after_h * HOUR_MS)
    rules = DeferralSettings(enabled=True, deadline_buffer_h=buffer_h, deadline_buffer_fraction=fraction,
                             defer_green_only=True)  # fmt: skip
    forecasts = {"GB": forecast("GB", gb, band), "FR": forecast("FR", fr, band)}
    planned = None if planned_after_h is None else now + int(planned_after_h * HOUR_MS)
    d = decide_deferral(now, hours, deadline, "GB", now_carbon, forecasts, ["GB", "FR"], rules, green_only,
                        waiting_since_ms=None if planned is None else now, waiting_until_ms=planned)  # fmt: skip
    if not d.defer:
        assert d.until_ms is None
        return
    assert deadline is not None and d.until_ms is not None and d.window is not None
    duration = int(hours * HOUR_MS)
    assert now < d.until_ms <= latest_start_ms(now, hours, deadline, rules)
    assert planned is None or d.until_ms <= planned  # a revisit never pushes the plan later
    assert d.until_ms + duration <= deadline  # started when the wait ends, it still meets the deadline
    assert now + duration <= deadline  # only work that placing now would finish in time ever waits
    assert d.saving_gco2_per_kwh > d.margin_gco2_per_kwh >= rules.min_saving_gco2_per_kwh
    assert d.window.mean_gco2_per_kwh < d.now.mean_gco2_per_kwh if d.now else False
    assert d.reason.startswith("deferred until ")


def test_a_wait_is_revisited_but_never_pushed_past_its_window_nor_the_longest_wait():
    d = decide_deferral(T0, 4.0, T0 + 30 * HOUR_MS, "GB", 250.0, {"GB": GB_DIP}, ["GB"], ON)
    assert d.defer and d.until_ms == T0 + 6 * HOUR_MS
    # a fresh forecast shows the dip later: the plan does not move later than the window it waited for
    later = forecast("GB", [250.0] * 9 + [100.0] * 6 + [250.0] * 21, band=10.0, issued=T0 + HOUR_MS)
    revisit = decide_deferral(T0 + 2 * HOUR_MS, 4.0, T0 + 30 * HOUR_MS, "GB", 250.0, {"GB": later}, ["GB"], ON,
                              waiting_since_ms=T0, waiting_until_ms=d.until_ms)  # fmt: skip
    assert not revisit.defer or revisit.until_ms <= d.until_ms
    come = decide_deferral(T0 + 6 * HOUR_MS, 4.0, T0 + 30 * HOUR_MS, "GB", 250.0, {"GB": later}, ["GB"], ON,
                           waiting_since_ms=T0, waiting_until_ms=d.until_ms)  # fmt: skip
    assert not come.defer and "the window it waited for has come" in come.reason
    rules = DeferralSettings(enabled=True, max_wait_h=3)
    tired = decide_deferral(T0 + 3 * HOUR_MS, 4.0, T0 + 30 * HOUR_MS, "GB", 250.0, {"GB": later}, ["GB"], rules,
                            waiting_since_ms=T0)  # fmt: skip
    assert not tired.defer and "waited 3 h" in tired.reason


def test_green_only_work_is_placed_unless_allowed_to_wait():
    d = decide_deferral(T0, 4.0, T0 + 24 * HOUR_MS, "GB", 250.0, {"GB": GB_DIP}, ["GB"], ON, green_only=True)
    assert not d.defer and "green-only" in d.reason
    rules = DeferralSettings(enabled=True, defer_green_only=True)
    assert decide_deferral(
        T0, 4.0, T0 + 24 * HOUR_MS, "GB", 250.0, {"GB": GB_DIP}, ["GB"], rules, green_only=True
    ).defer
