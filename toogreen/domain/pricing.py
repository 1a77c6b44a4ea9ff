"""The price table and its dynamic factors (SPEC §5): €/GPU-hour for a node now, and how a charge splits."""

from __future__ import annotations

from dataclasses import dataclass

from toogreen.settings import PricingSettings


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


def base_price(gpu_model: str, settings: PricingSettings) -> float:
    """Base €/GPU-hour of a GPU model; unknown models get the configured default."""
    return settings.base_eur_per_gpu_hour.get(gpu_model, settings.default_eur_per_gpu_hour)


def green_premium(renewable_pct: float | None, settings: PricingSettings) -> float:
    """10-25 %, rising with the renewable share above 50 %; 0 at or below 50 %."""
    if renewable_pct is None or renewable_pct <= 50.0:
        return 0.0
    span = settings.green_premium_max - settings.green_premium_min
    return settings.green_premium_min + span * _clamp((renewable_pct - 50.0) / 50.0)


def surplus_discount(surplus_strength: float, settings: PricingSettings) -> float:
    """Up to 40 %, rising with the size of the surplus (strength 0..1)."""
    return settings.surplus_discount_max * _clamp(surplus_strength)


def demand_multiplier(pending_workloads: int, free_gpus: int, settings: PricingSettings) -> float:
    """1.0-2.5x from queue depth: pending workloads per free GPU."""
    ratio = pending_workloads / max(free_gpus, 1)
    return 1.0 + (settings.demand_multiplier_max - 1.0) * _clamp(ratio / settings.demand_ratio_at_max)


@dataclass(frozen=True)
class PriceQuote:
    eur_per_gpu_hour: float
    base: float
    green_premium: float
    surplus_discount: float
    demand_multiplier: float
    compute_fraction: float = 1.0


def quote(
    gpu_model: str,
    renewable_pct: float | None,
    surplus_strength: float,
    settings: PricingSettings,
    demand: float = 1.0,
    compute_fraction: float = 1.0,
) -> PriceQuote:
    """Price of one GPU (or a MIG slice of ``compute_fraction``) for one hour, now."""
    base = base_price(gpu_model, settings)
    premium = green_premium(renewable_pct, settings)
    discount = surplus_discount(surplus_strength, settings)
    price = base * (1 + premium) * (1 - discount) * demand * compute_fraction
    return PriceQuote(round(price, 6), base, premium, discount, demand, compute_fraction)


@dataclass(frozen=True)
class ChargeSplit:
    charge: float
    fee: float
    payout: float


def split_charge(eur_per_gpu_hour: float, gpu_hours: float, settings: PricingSettings) -> ChargeSplit:
    """The customer's charge, the platform's fee and the provider's payout, to the cent."""
    charge = round(eur_per_gpu_hour * gpu_hours, 2)
    fee = round(charge * settings.platform_fee_fraction, 2)
    return ChargeSplit(charge=charge, fee=fee, payout=round(charge - fee, 2))
