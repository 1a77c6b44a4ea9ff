"""The Electricity Maps client against a local stand-in serving the documented v3 shapes."""

import pytest

from connectors.electricitymaps import ElectricityMapsClient, ElectricityMapsError
from tests.standins import electricitymaps as standin
from tests.standins.server import serve
from toogreen.codec import decode, encode
from toogreen.domain.validation import validate_grid_reading
from toogreen.settings import GridSourceSettings


def client_for(base: str, token: str = standin.TOKEN, ttl: float = 300.0) -> ElectricityMapsClient:
    return ElectricityMapsClient(
        GridSourceSettings(electricitymaps_api_base=f"{base}/v3", electricitymaps_token=token, cache_ttl_s=ttl)
    )


def test_latest_reading_combines_intensity_mix_and_price():
    with serve(standin.create()) as base:
        reading = client_for(base).latest("DE")
    assert reading["carbon_intensity_gco2_per_kwh"] == 302.0 + 12
    assert reading["renewable_pct"] == 45.5 + 12 and reading["price"] == 88.2
    assert reading["source"] == "electricitymaps" and reading["estimated"] is True
    assert validate_grid_reading(reading) == []
    encode("grid.readings", reading)


def test_history_joins_the_renewable_share_where_known():
    with serve(standin.create()) as base:
        history = client_for(base).history("FR")
    assert len(history) == 13 and history[0]["ts_ms"] < history[-1]["ts_ms"]
    assert history[2]["renewable_pct"] == 26.0 and history[1]["renewable_pct"] is None


def test_responses_are_cached():
    app = standin.create()
    with serve(app) as base:
        client = client_for(base)
        client.latest("DE")
        client.latest("DE")
    assert app.state.calls == 3 and client.requests_made == 3


def test_429_is_retried_with_backoff():
    app = standin.create(rate_limit_first=2)
    with serve(app) as base:
        client = client_for(base)
        assert client.latest("FR")["carbon_intensity_gco2_per_kwh"] == 48.0 + 12
    assert client.requests_made == 5  # two refusals, then three answers


def test_bad_token_and_unknown_zone_are_clear_errors():
    with serve(standin.create()) as base:
        with pytest.raises(ElectricityMapsError, match="refused the token"):
            client_for(base, token="wrong").latest("DE")
        with pytest.raises(ElectricityMapsError, match="does not know zone 'XX'"):
            client_for(base).latest("XX")


def test_missing_token_is_a_configuration_error():
    with pytest.raises(ElectricityMapsError, match="TOOGREEN_GRID__ELECTRICITYMAPS_TOKEN"):
        ElectricityMapsClient(GridSourceSettings())


def test_the_forecast_is_a_grid_forecasts_record_with_an_assumed_band():
    from toogreen.domain.forecast import Forecast
    from toogreen.settings import ForecastSettings

    with serve(standin.create()) as base:
        f = client_for(base).forecast("DE", ForecastSettings(vendor_band_pct=10))
    assert f.source == "electricitymaps" and f.step_ms == 3_600_000 and len(f.points) == 24
    assert f.points[3].mean_gco2_per_kwh == f.points[2].mean_gco2_per_kwh  # 15:00 was missing: 14:00 holds
    assert f.points[0].high_gco2_per_kwh - f.points[0].mean_gco2_per_kwh == pytest.approx(
        0.1 * f.points[0].mean_gco2_per_kwh
    )
    last = f.points[-1]
    assert last.high_gco2_per_kwh - last.mean_gco2_per_kwh == pytest.approx(0.2 * last.mean_gco2_per_kwh)
    assert min(f.points, key=lambda p: p.mean_gco2_per_kwh).ts_ms >= f.start_ms + 14 * 3_600_000  # the night dip
    assert Forecast.from_record(decode("grid.forecasts", encode("grid.forecasts", f.to_record()))) == f


def test_a_forecast_for_an_unknown_zone_is_a_clear_error():
    from toogreen.settings import ForecastSettings

    with serve(standin.create()) as base, pytest.raises(ElectricityMapsError, match="does not know zone 'XX'"):
        client_for(base).forecast("XX", ForecastSettings())
