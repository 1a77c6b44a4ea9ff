"""The forecaster: reads ``grid.readings``, keeps each zone's recent history, and publishes a day-ahead forecast
per zone on ``grid.forecasts`` whenever the zone's event time crosses an issue boundary (every
``issue_interval_h``, on the hour grid of the epoch). So a replay of 2020 gets the forecasts a live system would
have had then, from the readings before each issue time only.

Where an Electricity Maps token is set (``source="electricitymaps"``), the vendor's own forecast is published
instead; if the call fails (no forecast in the token's plan, an unknown zone) the zone falls back to the model
fitted on its history, and the failure is counted.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toogreen.domain.forecast import ETS, HOUR_MS, Forecast, ForecastError, LatestForecasts, fit_forecast
from toogreen.kafka.producer import DeliveryStats
from toogreen.settings import Settings

VendorForecast = Callable[[str], Forecast]


@dataclass
class IssuerStats:
    issued: int = 0
    vendor_failures: list[str] = field(default_factory=list)
    too_little_history: int = 0  # issue times at which a zone had under two days of readings
    delivery: DeliveryStats | None = None


class ZoneHistory:
    """One zone's readings, in time order, the last ``keep_ms`` of them (a late reading is put in its place)."""

    def __init__(self, keep_ms: int) -> None:
        self.keep_ms = keep_ms
        self.times: list[int] = []
        self.values: list[float] = []

    def add(self, ts_ms: int, value: float) -> None:
        i = bisect.bisect_right(self.times, ts_ms)
        if i and self.times[i - 1] == ts_ms:
            self.values[i - 1] = value  # the same timestamp again: the later value wins
            return
        self.times.insert(i, ts_ms)
        self.values.insert(i, value)
        cut = bisect.bisect_left(self.times, self.times[-1] - self.keep_ms)
        if cut:
            del self.times[:cut], self.values[:cut]

    def readings(self) -> list[tuple[int, float]]:
        return list(zip(self.times, self.values, strict=True))


class ForecastIssuer:
    """Readings in, forecasts out: one per zone per issue boundary its readings pass."""

    def __init__(self, settings: Settings, vendor: VendorForecast | None = None, model: str = ETS) -> None:
        self.settings = settings
        self.vendor = vendor
        self.model = model
        self.interval_ms = int(settings.forecast.issue_interval_h * HOUR_MS)
        self.history: dict[str, ZoneHistory] = {}
        self.next_issue: dict[str, int] = {}
        self.latest = LatestForecasts()
        self.stats = IssuerStats()
        self.fitted: dict[str, Any] = {}  # per zone: the last fit's parameters, where the next fit starts

    def add(self, reading: Mapping[str, Any]) -> list[Forecast]:
        zone, ts = str(reading["zone"]), int(reading["ts_ms"])
        keep = int((self.settings.forecast.history_days + 1) * 24 * HOUR_MS)
        history = self.history.setdefault(zone, ZoneHistory(keep))
        due = self.next_issue.get(zone)
        out = []
        if due is not None and ts >= due:
            # issue at the last boundary passed, from the readings before it (this one is not among them)
            at = ts - ts % self.interval_ms
            forecast = self._issue(zone, history, at)
            if forecast is not None and self.latest.offer(forecast):
                out.append(forecast)
        history.add(ts, float(reading["carbon_intensity_gco2_per_kwh"]))
        if due is None or ts >= due:
            self.next_issue[zone] = ts - ts % self.interval_ms + self.interval_ms
        return out

    def _issue(self, zone: str, history: ZoneHistory, at_ms: int) -> Forecast | None:
        if self.vendor is not None:
            try:
                forecast = self.vendor(zone)
                self.stats.issued += 1
                return forecast
            except Exception as exc:  # the vendor's failure must not stop this zone's forecasts
                if len(self.stats.vendor_failures) < 20:
                    self.stats.vendor_failures.append(f"{zone}: {exc}")
        try:
            forecast, params = fit_forecast(zone, history.readings(), at_ms, self.settings.forecast, self.model,
                                            start_params=self.fitted.get(zone))  # fmt: skip
        except ForecastError:
            self.stats.too_little_history += 1
            return None
        if params is not None:
            self.fitted[zone] = params
        self.stats.issued += 1
        return forecast


def run_forecaster(
    settings: Settings, stop: threading.Event, source: str = "model", idle_exit_s: float | None = None
) -> IssuerStats:
    """Consume ``grid.readings`` from the start of the log, publish forecasts as issue boundaries pass; stop when
    ``stop`` is set (or after ``idle_exit_s`` without a reading, for a replay)."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from toogreen.codec import DecodeError, decode
    from toogreen.kafka.producer import RecordProducer
    from toogreen.topics import GRID_FORECASTS, GRID_READINGS

    vendor: VendorForecast | None = None
    if source == "electricitymaps":
        from connectors.electricitymaps import ElectricityMapsClient

        client = ElectricityMapsClient(settings.grid)
        vendor = lambda zone: client.forecast(zone, settings.forecast)  # noqa: E731
    elif source != "model":
        raise ValueError(f"unknown forecast source {source!r}: model or electricitymaps")
    issuer = ForecastIssuer(settings, vendor)
    producer = RecordProducer(settings.bootstrap)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "toogreen-forecaster",
                         "enable.auto.commit": False})  # fmt: skip
    meta = consumer.list_topics(GRID_READINGS.name, timeout=10)
    consumer.assign([TopicPartition(GRID_READINGS.name, p, OFFSET_BEGINNING)
                     for p in meta.topics[GRID_READINGS.name].partitions])  # fmt: skip
    last_seen = time.monotonic()
    try:
        while not stop.is_set():
            msg = consumer.poll(0.25)
            if msg is None or msg.error():
                if idle_exit_s is not None and time.monotonic() - last_seen > idle_exit_s:
                    break
                continue
            last_seen = time.monotonic()
            try:
                reading = decode(GRID_READINGS.name, msg.value())
            except DecodeError:
                continue  # the worker dead-letters bad readings; the forecaster only skips them
            for forecast in issuer.add(reading):
                # stamped with its issue time: the record's event time, as a replay's readings carry theirs
                producer.send(GRID_FORECASTS.name, forecast.zone, forecast.to_record(), timestamp_ms=forecast.issued_ms)
        delivered = producer.flush()
    finally:
        consumer.close()
    issuer.stats.delivery = delivered
    return issuer.stats
