"""Response models of the query API. Row-shaped answers are derived from the table (or the Avro schema) they are
read from (``sinks/columns.py``); the rest are written here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sinks.columns import GRID_READINGS_TABLE, ZONE_WINDOWS_TABLE, table_model

GridReading = GRID_READINGS_TABLE.model("GridReading", "A zone's grid reading (fields of grid_reading.avsc).")
ZoneWindow = ZONE_WINDOWS_TABLE.model("ZoneWindow", "One event-time window of a zone (fields of zone_window.avsc).")
WorkloadRow = table_model("workloads", "WorkloadRow", "A workload's request and current state.")
WorkloadEvent = table_model("workload_events", "WorkloadEvent", "One lifecycle event of a workload.")
BillingRow = table_model(
    "billing_records", "BillingRow", "One billing record of a workload.", exclude=("metering_ids",)
)
DecisionRow = table_model("routing_decisions", "DecisionRow", "A routing decision: chosen node, alternatives, why.")
Receipt = table_model(
    "carbon_receipts", "Receipt", "A signed carbon receipt, as it was signed.", exclude=("receipt_hash",)
)
NodeRow = table_model("nodes", "NodeRow", "A node's registration and its latest telemetry.")


class Health(BaseModel):
    status: str = Field(description="ok, or degraded (with a 503)")
    bootstrap: str
    duckdb: str
    grid_readings: int
    nodes: int
    workloads: int
    problems: list[str] = Field(default_factory=list, description="What is wrong, one line each")
    checks: dict[str, Any] = Field(default_factory=dict, description="The broker's, the worker's, the sink's figures")


class Dashboard(BaseModel):
    """Counts for the dashboard's front page, over what the caller may see."""

    zones: int
    zones_in_surplus: list[str]
    nodes: int
    workloads_by_status: dict[str, int]
    decisions: int
    dead_letters: int | None = None  # admin only


class Zone(BaseModel):
    zone: str
    name: str
    latest: GridReading | None  # type: ignore[valid-type]
    staleness_s: float | None
    window_5m: ZoneWindow | None  # type: ignore[valid-type]
    window_1h: ZoneWindow | None  # type: ignore[valid-type]
    surplus: bool
    surplus_reason: str | None


class ZoneHistory(BaseModel):
    zone: str
    kind: str
    windows: list[ZoneWindow]  # type: ignore[valid-type]


class Node(NodeRow):  # type: ignore[valid-type, misc]
    """A node with its current score against a reference workload (1 GB for an hour) and why it is not routable."""

    vram_reserved_mb: int
    tier: int | None
    routable: bool
    not_routable_because: str | None
    score: float | None
    carbon_gco2_per_kwh: float | None
    price_eur_per_gpu_hour: float | None


class Hold(BaseModel):
    workload_id: str
    vram_mb: int | None
    mig_profile: str | None


class NodeDetail(Node):
    """A node, its current score and tier, the workloads holding capacity on it, and its latest telemetry."""

    holds: list[Hold]


class Submitted(BaseModel):
    workload_id: str
    status: str
    href: str


class Decision(DecisionRow):  # type: ignore[valid-type, misc]
    alternatives: Any = None
    grid_windows: Any = None
    exclusions: Any = None


class Move(BaseModel):
    decision_id: str
    ts_ms: int | None
    from_node_id: str | None
    from_zone: str | None
    to_node_id: str | None
    to_zone: str | None
    checkpoint_uri: str | None
    score_gain: float | None
    saved_gco2: float | None
    move_cost_s: float | None
    reason: str | None
    # what the node agents measured (null for a simulated node)
    checkpoint_sha256: str | None = None
    checkpoint_bytes: int | None = None
    checkpoint_s: float | None = None
    store_s: float | None = None
    transfer_s: float | None = None
    restore_s: float | None = None
    downtime_s: float | None = None


class RunningOn(BaseModel):
    """The node a running workload is on, as its live meter needs it (its submitter sees no other node)."""

    node_id: str
    zone: str | None
    power_w: float | None = Field(description="the node's power draw in its newest telemetry")
    telemetry_ms: int | None = Field(description="when that telemetry was taken")
    carbon_gco2_per_kwh: float | None = Field(description="where it runs now: the zone's 5-min window × the node's PUE")
    grid_price_eur_per_mwh: float | None = Field(description="the zone's grid price in its newest 5-min window")


class WorkloadDetail(WorkloadRow):  # type: ignore[valid-type, misc]
    """A workload with its moves, receipt, bills, decisions and applied events, and while it runs its node's
    power and the intensity there (``running_on``)."""

    moves: Any = None  # the row's move count on a list, the moves here (as before)
    receipt_id: str | None
    billing: list[BillingRow]  # type: ignore[valid-type]
    decisions: list[Decision]
    events: list[WorkloadEvent]  # type: ignore[valid-type]
    running_on: RunningOn | None = None


class Verification(BaseModel):
    valid: bool
    failed_check: str | None


class PublicKey(BaseModel):
    algorithm: str
    hex: str
    pem: str


class BillingRecord(BillingRow):  # type: ignore[valid-type, misc]
    payout_status: str | None = Field(default=None, description="sent, paid, failed or accruing (owed to a new wallet)")
    payout_rail: str | None = None
    payout_lamports: int | None = None
    payout_reference: str | None = None
    payout_reason: str | None = Field(
        default=None, description="Why a payout failed, or what an accruing one waits for (a new wallet's rent)"
    )


class BillingTotals(BaseModel):
    records: int
    gpu_hours: float
    kwh: float
    charge: float
    fee: float
    payout: float


class Billing(BaseModel):
    currency: str
    totals: BillingTotals
    records: list[BillingRecord]


class SustainabilityTotals(BaseModel):
    receipts: int
    kwh: float
    gco2_actual: float
    gco2_baseline: float
    gco2_saved: float
    gco2_market_based: float | None


class SustainabilityGroup(BaseModel):
    key: str | None
    kwh: float | None
    gco2_actual: float | None
    gco2_baseline: float | None
    gco2_saved: float | None


class Sustainability(BaseModel):
    baseline: str
    totals: SustainabilityTotals
    by_zone: list[SustainabilityGroup]
    by_provider_type: list[SustainabilityGroup]


class MoveRequested(BaseModel):
    workload_id: str
    from_node_id: str | None
    node_id: str | None  # the node asked for; None: the router picks the best other node
    event_id: str


class DrainRequested(BaseModel):
    node_id: str
    moves: list[MoveRequested]


class SurplusScheduled(BaseModel):
    zone: str
    curtailment_mw: float
    readings: int
    from_ms: int
    until_ms: int
    source: str


class DeadLetter(BaseModel):
    source_topic: str
    source_partition: int
    source_offset: int
    ts_ms: int | None
    stage: str | None
    reason: str | None
    raw_bytes: int | None


class Problem(BaseModel):
    """An error: what went wrong, in words (422s carry pydantic's list of errors)."""

    model_config = ConfigDict(extra="allow")
    detail: Any


class Me(BaseModel):
    role: str
    subject: str


class IssuedToken(BaseModel):
    """A new token: shown here once, stored only as its hash."""

    role: str
    subject: str
    token: str


class RegisteredNode(BaseModel):
    """A registered node and the token its node agent uses (shown once)."""

    node_id: str
    provider: str
    node_type: str
    token: str
    href: str


_MEANINGS = {
    400: "Malformed request",
    401: "No token, or an unknown one",
    403: "The caller's role may never do this",
    404: "No such object among those the caller may see",
    409: "The id is taken, or the object is not in a state that allows it",
    413: "Body over the size limit",
    422: "Invalid input, with the reason",
    503: "Could not publish to Kafka (retry; with the same Idempotency-Key for a submission)",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a router documents, each with its meaning."""
    return {code: {"model": Problem, "description": _MEANINGS[code]} for code in codes}
