"""The Electricity Maps client against a local stand-in serving the documented v3 shapes."""

import pytest

from connectors.electricitymaps import ElectricityMapsClient, ElectricityMapsError
from tests.standins import electricitymaps as standin
from tests.standins.server import serve
from toogreen.codec import encode
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
