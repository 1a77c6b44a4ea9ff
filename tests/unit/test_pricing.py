"""The price table and its dynamic factors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toogreen.domain.pricing import demand_multiplier, green_premium, quote, split_charge, surplus_discount
from toogreen.settings import PricingSettings

P = PricingSettings()


def test_base_prices_from_the_spec():
    assert quote("H100", None, 0.0, P).eur_per_gpu_hour == 2.40
    assert quote("A100", None, 0.0, P).eur_per_gpu_hour == 1.50
    assert quote("RTX 4090", None, 0.0, P).eur_per_gpu_hour == 0.40
    assert quote("Unknown GPU", None, 0.0, P).base == P.default_eur_per_gpu_hour


@given(st.floats(0, 100))
def test_green_premium_is_zero_or_10_to_25_percent(ren):
    g = green_premium(ren, P)
    assert g == 0.0 if ren <= 50 else 0.10 <= g <= 0.25


def test_green_premium_rises_with_renewables():
    assert green_premium(60, P) < green_premium(90, P) <= 0.25


@given(st.floats(0, 5))
def test_surplus_discount_caps_at_40_percent(strength):
    assert 0 <= surplus_discount(strength, P) <= 0.40


@given(st.integers(0, 1000), st.integers(0, 100))
def test_demand_multiplier_between_1_and_2_5(pending, free):
    assert 1.0 <= demand_multiplier(pending, free, P) <= 2.5


def test_mig_slice_priced_by_compute_fraction():
    whole = quote("H100", 80, 0.0, P).eur_per_gpu_hour
    assert quote("H100", 80, 0.0, P, compute_fraction=1 / 7).eur_per_gpu_hour == pytest.approx(whole / 7, rel=1e-5)


def test_charge_split_15_85():
    s = split_charge(2.40, 10.0, P)
    assert (s.charge, s.fee, s.payout) == (24.0, 3.6, 20.4)
    assert s.fee + s.payout == pytest.approx(s.charge)
