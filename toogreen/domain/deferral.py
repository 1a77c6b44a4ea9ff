"""Waiting is a decision: whether a workload that could be placed now should wait for a cleaner window.

A workload has slack when its deadline leaves time beyond its expected duration. It may wait for a window the
forecasts show in a zone where it could run, when the expected saving (gCO2eq/kWh of placing now minus the
window's forecast mean) beats a margin that grows with the forecast's uncertainty: ``max(min_saving,
min_saving_pct of now) + uncertainty_weight × the window's mean half band``. A deferral never ends later than the
latest start: the deadline less the duration less a buffer (``deadline_buffer_h`` + ``deadline_buffer_fraction`` of
the duration) kept for capacity not being there when the wait ends; a workload whose deadline placing now would
still meet is never deferred past the point where it could no longer be met.

A wait is a plan, revisited whenever the router looks at the workload again (a retry, new forecasts, capacity
freed): it is placed as soon as placing now is good enough, when the window it waited for has come, or after
``max_wait_h`` in all, so that a fresh forecast cannot push a cleaner window ahead of it for ever.

Pure: the router calls it with the zone views it routes on and the latest forecast per zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from toogreen.domain.forecast import HOUR_MS, Forecast, ForecastPoint, WindowForecast
from toogreen.settings import DeferralSettings


@dataclass(frozen=True)
class DeferralDecision:
    defer: bool
    until_ms: int | None  # when to place it (None: now)
    zone: str | None  # the zone of the cleaner window
    reason: str  # "deferred until T because …", or why it goes now
    slack_h: float | None  # deadline - now - expected duration (None: no deadline)
    latest_start_ms: int | None
    now: WindowForecast | None  # placing now: the current reading, then the forecast, over the run
    window: WindowForecast | None  # the best later window found
    saving_gco2_per_kwh: float = 0.0
    margin_gco2_per_kwh: float = 0.0
    forecasts_used: tuple[tuple[str, int, str], ...] = ()  # (zone, issued_ms, model) of each forecast read
    points_used: tuple[ForecastPoint, ...] = ()  # the window's forecast points


def _when(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def latest_start_ms(now_ms: int, expected_hours: float, deadline_ms: int | None, settings: DeferralSettings) -> int:
    """The last moment a deferral may end: the deadline less the duration and the buffer (no deadline: now)."""
    if deadline_ms is None:
        return now_ms
    buffer_h = settings.deadline_buffer_h + settings.deadline_buffer_fraction * expected_hours
    return deadline_ms - int((expected_hours + buffer_h) * HOUR_MS)


def _running_now(forecast: Forecast | None, zone: str, now_ms: int, end_ms: int, now_carbon: float) -> WindowForecast:
    """Placing now: the current reading for the step under way, the forecast after it (the reading alone where
    the forecast does not reach)."""
    if forecast is None or forecast.end_ms <= now_ms:
        return WindowForecast(zone, now_ms, end_ms, now_carbon, 0.0)
    if now_ms < forecast.start_ms:
        step_end = forecast.start_ms
    else:
        step_end = now_ms - (now_ms - forecast.start_ms) % forecast.step_ms + forecast.step_ms
    step_end = min(step_end, end_ms)
    later_end = min(end_ms, forecast.end_ms)
    later = forecast.window(step_end, later_end) if later_end > step_end else None
    rest = end_ms - later_end  # beyond the forecast: the current reading holds
    known = step_end - now_ms + rest
    mean = now_carbon * known
    band = 0.0
    if later is not None:
        mean += later.mean_gco2_per_kwh * (later_end - step_end)
        band += later.half_band_gco2_per_kwh * (later_end - step_end)
    span = end_ms - now_ms
    return WindowForecast(zone, now_ms, end_ms, mean / span, band / span)


def decide_deferral(
    now_ms: int,
    expected_hours: float,
    deadline_ms: int | None,
    now_zone: str,
    now_carbon_gco2_per_kwh: float,
    forecasts: Mapping[str, Forecast],
    zones: Iterable[str],
    settings: DeferralSettings,
    green_only: bool = False,
    waiting_since_ms: int | None = None,
    waiting_until_ms: int | None = None,
    available_from_ms: Mapping[str, int] | None = None,
    waiting_zone: str | None = None,
) -> DeferralDecision:
    """Place now, or wait for the cleanest window the forecasts show in ``zones`` (the zones where the router
    could place it as well as now) that starts before its latest start. ``now_zone``/``now_carbon_gco2_per_kwh``:
    where placing now would run it and that zone's current intensity; ``waiting_since_ms``/``waiting_until_ms``/
    ``waiting_zone``: the wait it is already in, if any. ``available_from_ms``: per zone, the earliest a node there
    that could take it is expected to be free (now where one is free now; a zone absent has none expected): a
    window starts no earlier, so a wait for a full zone is a wait for its capacity (None: capacity not looked at).

    A wait whose window has come is placed now when placing now runs it in the zone it waited for; when it does
    not (the node it waited for is still busy, or another took it), the plan is made again, up to the latest
    start."""
    duration_ms = int(expected_hours * HOUR_MS)
    latest = latest_start_ms(now_ms, expected_hours, deadline_ms, settings)
    slack_h = None if deadline_ms is None else (deadline_ms - now_ms - duration_ms) / HOUR_MS

    def now_decision(
        why: str,
        now: WindowForecast | None = None,
        window: WindowForecast | None = None,
        saving_gco2_per_kwh: float = 0.0,
        margin_gco2_per_kwh: float = 0.0,
        forecasts_used: tuple[tuple[str, int, str], ...] = (),
        points_used: tuple[ForecastPoint, ...] = (),
    ) -> DeferralDecision:
        latest_or_none = latest if deadline_ms is not None else None
        return DeferralDecision(False, None, None, why, slack_h, latest_or_none, now, window, saving_gco2_per_kwh,
                                margin_gco2_per_kwh, forecasts_used, points_used)  # fmt: skip

    if not settings.enabled:
        return now_decision("deferral is switched off")
    if deadline_ms is None:
        return now_decision("no deadline: nothing bounds a wait, so it is placed now")
    if green_only and not settings.defer_green_only:
        return now_decision("green-only work is not deferred (few nodes may take it): placed now")
    window_came = waiting_until_ms is not None and now_ms >= waiting_until_ms
    if window_came and (waiting_zone is None or waiting_zone == now_zone or available_from_ms is None):
        return now_decision(f"the window it waited for has come ({_when(waiting_until_ms or now_ms)}): placed now")
    if waiting_since_ms is not None and now_ms - waiting_since_ms >= settings.max_wait_h * HOUR_MS:
        return now_decision(f"it has waited {settings.max_wait_h:g} h, the most a workload waits: placed now")
    if slack_h is None or slack_h < settings.min_slack_h:
        return now_decision(f"slack {slack_h:.2f} h is below {settings.min_slack_h} h: placed now")
    if latest <= now_ms:
        return now_decision("its latest start (deadline less duration and buffer) has come: placed now")
    current = forecasts.get(now_zone)
    here = _running_now(current, now_zone, now_ms, now_ms + duration_ms, now_carbon_gco2_per_kwh)
    used: dict[str, tuple[str, int, str]] = {}
    best: WindowForecast | None = None
    best_forecast: Forecast | None = None
    # a revisit never plans later than the plan it is in, unless that plan fell through: its window came without
    # the capacity it waited for, or the capacity it waited for is now expected later than the window
    fell_through = window_came or (
        waiting_until_ms is not None and available_from_ms is not None and waiting_zone is not None
        and available_from_ms.get(waiting_zone, latest + 1) > waiting_until_ms
    )  # fmt: skip
    last_start = latest if waiting_until_ms is None or fell_through else min(latest, waiting_until_ms)
    for zone in sorted(set(zones)):
        f = forecasts.get(zone)
        if f is None or f.end_ms <= now_ms:
            continue
        free_from = now_ms if available_from_ms is None else available_from_ms.get(zone)
        if free_from is None or free_from > last_start:
            continue
        used[zone] = (zone, f.issued_ms, f.model)
        # windows start at the forecast's step boundaries, from the next one on (and once a node is free there)
        start = f.start_ms if now_ms < f.start_ms else f.start_ms + ((now_ms - f.start_ms) // f.step_ms + 1) * f.step_ms
        if free_from > start:
            start = free_from
        while start <= last_start and start + duration_ms <= f.end_ms:
            w = f.window(start, start + duration_ms)
            if w is not None and (best is None or w.mean_gco2_per_kwh < best.mean_gco2_per_kwh - 1e-9):
                best, best_forecast = w, f
            start += f.step_ms
    forecasts_used = tuple(used[z] for z in sorted(used))
    if best is None or best_forecast is None:
        return now_decision("no forecast reaches a later window that ends in time: placed now", now=here,
                            forecasts_used=forecasts_used)  # fmt: skip
    saving = here.mean_gco2_per_kwh - best.mean_gco2_per_kwh
    floor = max(settings.min_saving_gco2_per_kwh, settings.min_saving_pct / 100 * here.mean_gco2_per_kwh)
    margin = floor + settings.uncertainty_weight * best.half_band_gco2_per_kwh
    first = (best.start_ms - best_forecast.start_ms) // best_forecast.step_ms
    last = (best.end_ms - 1 - best_forecast.start_ms) // best_forecast.step_ms
    points = best_forecast.points[first : last + 1]
    facts = (
        f"{best.zone}'s forecast ({best_forecast.model}, issued {_when(best_forecast.issued_ms)}) for "
        f"{_when(best.start_ms)} to {_when(best.end_ms)} is {best.mean_gco2_per_kwh:.1f} "
        f"±{best.half_band_gco2_per_kwh:.1f} gCO2eq/kWh against {here.mean_gco2_per_kwh:.1f} placing now in "
        f"{now_zone}: saving {saving:.1f}"
    )
    band = best.half_band_gco2_per_kwh
    margin_text = f"margin {margin:.1f} ({floor:.1f} + {settings.uncertainty_weight} × {band:.1f})"
    if saving <= margin:
        return now_decision(f"placed now: {facts} does not beat the {margin_text}", here, best, saving, margin,
                            forecasts_used, points)  # fmt: skip
    capacity = ""
    if available_from_ms is not None and available_from_ms.get(best.zone, now_ms) > now_ms:
        capacity = f"; {best.zone} has no node free for it before {_when(available_from_ms[best.zone])} (expected)"
    why = (
        f"deferred until {_when(best.start_ms)} because {facts} > {margin_text}{capacity}; slack {slack_h:.1f} h, "
        f"latest start {_when(latest)}"
    )
    return DeferralDecision(True, best.start_ms, best.zone, why, slack_h, latest, here, best, saving, margin,
                            forecasts_used, points)  # fmt: skip
