"""Electricity Maps API v3 (``auth-token`` header): latest and history of carbon intensity, renewable share
(power breakdown) and day-ahead price per zone, as ``grid.readings`` records.

Responses are cached for ``cache_ttl_s``; a 429 is retried with exponential back-off (honouring
``Retry-After``); a bad token or an unknown zone is a clear error, not a retry.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from toogreen.domain.intensity import parse_time
from toogreen.settings import GridSourceSettings

SOURCE = "electricitymaps"


class ElectricityMapsError(RuntimeError):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ElectricityMapsClient:
    def __init__(self, settings: GridSourceSettings, client: httpx.Client | None = None) -> None:
        if not settings.electricitymaps_token:
            raise ElectricityMapsError("no Electricity Maps token: set TOOGREEN_GRID__ELECTRICITYMAPS_TOKEN")
        self.settings = settings
        self.http = client or httpx.Client(timeout=settings.http_timeout_s)
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self.requests_made = 0

    def _get(self, path: str, zone: str) -> Any:
        key = (path, zone)
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.settings.cache_ttl_s:
            return hit[1]
        body = self._fetch(path, zone)
        self._cache[key] = (time.monotonic(), body)
        return body

    @retry(
        retry=retry_if_exception_type((RateLimited, httpx.TransportError)),
        wait=wait_exponential(multiplier=0.2, max=30),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    def _fetch(self, path: str, zone: str) -> Any:
        self.requests_made += 1
        url = f"{self.settings.electricitymaps_api_base.rstrip('/')}/{path}"
        response = self.http.get(
            url, params={"zone": zone}, headers={"auth-token": self.settings.electricitymaps_token or ""}
        )
        if response.status_code == 429:
            retry_after = float(response.headers.get("retry-after", "1"))
            time.sleep(min(retry_after, 30))
            raise RateLimited(retry_after)
        if response.status_code in (401, 403):
            raise ElectricityMapsError(f"Electricity Maps refused the token ({response.status_code}): check it")
        if response.status_code in (400, 404):
            raise ElectricityMapsError(f"Electricity Maps does not know zone {zone!r}: {_message(response)}")
        if response.status_code >= 400:
            raise ElectricityMapsError(f"Electricity Maps answered {response.status_code}: {_message(response)}")
        return response.json()

    def latest(self, zone: str) -> dict[str, Any]:
        """The zone's latest reading as a ``grid.readings`` record."""
        ci = self._get("carbon-intensity/latest", zone)
        mix = self._get("power-breakdown/latest", zone)
        price = self._get("price-day-ahead/latest", zone)
        return _reading(zone, ci, mix, price)

    def history(self, zone: str) -> list[dict[str, Any]]:
        """The last 24 h of readings (intensity with the renewable share of the same hour where known)."""
        ci = self._get("carbon-intensity/history", zone)["history"]
        mix = {parse_time(m["datetime"]): m for m in self._get("power-breakdown/history", zone)["history"]}
        return [_reading(zone, c, mix.get(parse_time(c["datetime"])), None) for c in ci]


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body.get("error") or body)
    except ValueError:
        return response.text[:200]


def _reading(zone: str, ci: dict, mix: dict | None, price: dict | None) -> dict[str, Any]:
    return {
        "zone": zone,
        "ts_ms": parse_time(ci["datetime"]),
        "carbon_intensity_gco2_per_kwh": float(ci["carbonIntensity"]),
        "carbon_intensity_kind": "direct" if ci.get("emissionFactorType") == "direct" else "lifecycle",
        "carbon_intensity_basis": "average",
        "renewable_pct": None
        if not mix or mix.get("renewablePercentage") is None
        else float(mix["renewablePercentage"]),
        "price": None if not price or price.get("value") is None else float(price["value"]),
        "price_unit": (price or {}).get("unit") or "EUR/MWh",
        "price_market": "day_ahead",
        "curtailment_mw": None,
        "source": SOURCE,
        "estimated": bool(ci.get("isEstimated")),
    }
