"""A stand-in for Stripe's Billing Meter Events endpoint that checks requests the way Stripe documents them:
a Bearer secret key, form-encoded ``event_name``, ``payload[stripe_customer_id]`` and a whole-number
``payload[value]``, an ``identifier`` unique per meter, and idempotency keys that replay the first response."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

API_KEY = "sk_test_standin"


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": "invalid_request_error", "message": message, "code": code}}, status_code=status
    )


def create(fail_first: int = 0) -> FastAPI:
    app = FastAPI()
    app.state.events: dict[str, dict[str, Any]] = {}
    app.state.idempotent: dict[str, dict[str, Any]] = {}
    app.state.requests = 0
    app.state.fail = fail_first

    @app.post("/v1/billing/meter_events")
    async def create_meter_event(request: Request) -> Any:
        app.state.requests += 1
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Invalid API Key provided")
        if app.state.fail > 0:
            app.state.fail -= 1
            return JSONResponse({"error": {"type": "api_error", "message": "stand-in outage"}}, status_code=500)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        key = request.headers.get("idempotency-key")
        if key and key in app.state.idempotent:
            return app.state.idempotent[key]
        for field in ("event_name", "payload[stripe_customer_id]", "payload[value]"):
            if not form.get(field):
                return _error(400, f"Missing required param: {field}.", "parameter_missing")
        if not form["payload[value]"].isdigit():
            return _error(400, "payload[value] must be a whole number", "parameter_invalid_integer")
        identifier = form.get("identifier") or f"gen_{len(app.state.events)}"
        if identifier in app.state.events:
            return _error(400, f"An event with identifier {identifier} already exists.", "resource_already_exists")
        event = {
            "object": "billing.meter_event", "created": int(time.time()), "event_name": form["event_name"],
            "identifier": identifier, "livemode": False,
            "payload": {"stripe_customer_id": form["payload[stripe_customer_id]"], "value": form["payload[value]"]},
            "timestamp": int(form.get("timestamp") or time.time()),
        }  # fmt: skip
        app.state.events[identifier] = event
        if key:
            app.state.idempotent[key] = event
        return event

    return app
