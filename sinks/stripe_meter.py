"""Reporting usage to Stripe as Billing Meter Events through the real ``stripe`` SDK.

The event's ``identifier`` and the request's idempotency key are both the billing record's id, so a replay or a
retry never bills twice. The meter counts GPU-seconds (whole numbers). The API base is configurable, which is
how the tests point the SDK at a local stand-in.
"""

from __future__ import annotations

from typing import Any

import stripe
from stripe.params.billing import MeterEventCreateParams

from toogreen.settings import SettlementSettings


class StripeMeterReporter:
    def __init__(self, settings: SettlementSettings) -> None:
        if not settings.stripe_api_key:
            raise ValueError("no Stripe API key: set TOOGREEN_SETTLEMENT__STRIPE_API_KEY")
        self.settings = settings
        self.client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base, "meter_events": settings.stripe_api_base},
            max_network_retries=2,
        )

    def customer_for(self, submitter: str | None) -> str | None:
        return self.settings.stripe_customers.get(submitter or "", self.settings.stripe_default_customer)

    def report(self, billing: dict[str, Any], customer_id: str) -> str:
        """Send one meter event; returns 'reported' (or 'duplicate' if Stripe already has this identifier)."""
        gpu_seconds = round(float(billing["gpu_hours"]) * 3600)
        params: MeterEventCreateParams = {
            "event_name": self.settings.stripe_meter_event_name,
            "identifier": billing["billing_id"],
            "timestamp": int(billing["ts_ms"]) // 1000,
            "payload": {"stripe_customer_id": customer_id, "value": str(gpu_seconds)},
        }
        try:
            self.client.v1.billing.meter_events.create(params, {"idempotency_key": billing["billing_id"]})
        except stripe.InvalidRequestError as exc:
            if "identifier" in str(exc) and "already" in str(exc):
                return "duplicate"
            raise
        return "reported"
