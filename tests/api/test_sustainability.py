"""/api/v1/sustainability: totals and per-zone, per-provider-type emissions from the receipts' intervals."""

import pytest


def test_sustainability_by_zone_and_provider_type(client, settled):
    sustainability = client.get("/api/v1/sustainability").json()
    assert sustainability["totals"]["receipts"] == 1
    by_zone = {z["key"]: z for z in sustainability["by_zone"]}
    assert by_zone["FR"]["kwh"] == pytest.approx(1.0) and by_zone["DE"]["gco2_actual"] == pytest.approx(500.0)
    by_type = {t["key"]: t for t in sustainability["by_provider_type"]}
    assert set(by_type) == {"gamer", "datacenter"}
