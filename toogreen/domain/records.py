"""The typed records of the router's state and of the events it reads and writes, each with one wire form.

Every table value and every event payload that the agents and the evaluation handle is one of these immutable
records (msgspec ``Struct``s, frozen). Their wire form is the plain JSON-compatible dict of their fields
(:meth:`Record.to_wire` / :meth:`Record.from_wire`): what a table's changelog carries, and what the Avro codec
encodes for a topic. Changing a value means building a new record (:func:`msgspec.structs.replace`).

msgspec rather than frozen dataclasses: the same typed, immutable records, and a table value's round trip through
its wire form (JSON bytes, as a changelog carries it) is several times faster (``bench/bench_records.py``).
"""

from __future__ import annotations

from typing import Any, Self

import msgspec

from toogreen.domain.kinds import DecisionKind, EventKind, NodeAction, NodeHealth, NodeKind
from toogreen.domain.lifecycle import WorkloadState

__all__ = ["DecisionKind", "EventKind", "NodeAction", "NodeHealth", "NodeKind", "WorkloadState"]  # re-exported


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every record: its wire form is the dict of its fields (enums as their values)."""

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = msgspec.to_builtins(self)
        return wire

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """The record of a wire dict; fields it does not know are ignored, a wrong type raises
        :class:`msgspec.ValidationError`."""
        return msgspec.convert(data, cls)


# --- events -------------------------------------------------------------------------------------------------------


class WorkloadRequest(Record, frozen=True, kw_only=True):
    """What a submission asks for (the Avro record ``WorkloadRequest``)."""

    name: str
    workload_type: str
    image: str | None = None
    command: str | None = None
    vram_mb: int
    expected_hours: float
    priority: str = "normal"
    green_only: bool = False
    max_carbon_gco2_kwh: float | None = None
    budget_eur: float | None = None
    deadline_ms: int | None = None
    checkpoint_gb: float | None = None
    submitter: str = ""


class WorkloadEvent(Record, frozen=True, kw_only=True):
    """One ``workload.events`` record."""

    event_id: str
    workload_id: str
    ts_ms: int
    type: EventKind
    node_id: str | None = None
    progress_pct: float | None = None
    checkpoint_uri: str | None = None
    decision_id: str | None = None
    reason: str | None = None
    request: WorkloadRequest | None = None
    # what a node agent measured (checkpointed, resumed, progress with a checkpoint, completed, failed)
    checkpoint_sha256: str | None = None
    checkpoint_bytes: int | None = None
    checkpoint_s: float | None = None
    store_s: float | None = None
    transfer_s: float | None = None
    restore_s: float | None = None
    downtime_s: float | None = None
    exit_code: int | None = None
    result_sha256: str | None = None
    result_bytes: int | None = None
    result_uri: str | None = None


class NodeCommand(Record, frozen=True, kw_only=True):
    """One ``node.commands`` record: an order for a node agent."""

    command_id: str
    node_id: str
    ts_ms: int
    action: NodeAction
    workload_id: str
    checkpoint_uri: str | None = None
    vram_mb: int = 0
    expected_hours: float = 0.0
    image: str | None = None
    command: str | None = None
    mig_profile: str | None = None
    decision_id: str | None = None


class NodeRegistration(Record, frozen=True, kw_only=True):
    """What the router keeps of a ``node.registry`` record."""

    node_id: str
    provider: str
    node_type: NodeKind
    gpu_model: str
    vram_mb: int
    zone: str
    lat: float
    lng: float
    pue: float = 1.0
    mig_capable: bool = False
    declared_carbon_gco2_per_kwh: float | None = None
    max_power_w: float = 0.0
    drained: bool | None = None  # an operator's drain (True) or undrain (False); None keeps the node's drain


class TelemetrySample(Record, frozen=True, kw_only=True):
    """What the router reads of a ``node.telemetry`` record."""

    node_id: str
    ts_ms: int
    sm_util_pct: float
    mem_used_mb: int
    mem_total_mb: int
    power_w: float
    energy_j: float | None = None
    mig_slices_free: int = 0
    health: NodeHealth = NodeHealth.HEALTHY


class GridReading(Record, frozen=True, kw_only=True):
    """What the windows read of a ``grid.readings`` record."""

    zone: str
    ts_ms: int
    carbon_intensity_gco2_per_kwh: float
    renewable_pct: float | None = None
    price: float | None = None
    curtailment_mw: float | None = None


class ZoneWindow(Record, frozen=True, kw_only=True):
    """One ``zone.windows`` record: the aggregate of one event-time window of one zone. Its fields, in this order,
    are the Avro schema's (a test holds them equal)."""

    zone: str
    kind: str
    window_start_ms: int
    window_end_ms: int
    count: int
    late_count: int = 0
    carbon_mean: float
    carbon_min: float
    carbon_max: float
    carbon_last: float
    renewable_mean: float | None = None
    renewable_min: float | None = None
    renewable_max: float | None = None
    renewable_last: float | None = None
    renewable_std: float | None = None
    price_mean: float | None = None
    price_min: float | None = None
    price_max: float | None = None
    price_last: float | None = None
    curtailment_max_mw: float | None = None
    last_ts_ms: int
    surplus: bool = False
    surplus_reason: str | None = None
    surplus_strength: float = 0.0


class Alternative(Record, frozen=True, kw_only=True):
    """A node a decision judged: its tier and score parts, or why it was excluded."""

    node_id: str
    zone: str
    node_type: str
    tier: int | None = None
    eligible: bool
    excluded_reason: str | None = None
    score: float | None = None
    carbon_part: float | None = None
    price_part: float | None = None
    utilisation_part: float | None = None
    carbon_gco2_per_kwh: float | None = None
    price_eur_per_gpu_hour: float | None = None
    utilisation_pct: float | None = None
    mig_profile: str | None = None


class GridWindowUsed(Record, frozen=True, kw_only=True):
    """A zone's window as the decision saw it."""

    zone: str
    window_start_ms: int
    carbon_mean_gco2_per_kwh: float
    renewable_mean_pct: float | None = None
    price_mean: float | None = None
    surplus: bool = False


class Exclusion(Record, frozen=True, kw_only=True):
    reason: str
    count: int


class ForecastUsed(Record, frozen=True, kw_only=True):
    """A forecast a deferral read: whose, when it was issued, by which model."""

    zone: str
    issued_ms: int
    model: str


class ForecastPointUsed(Record, frozen=True, kw_only=True):
    ts_ms: int
    mean_gco2_per_kwh: float
    low_gco2_per_kwh: float
    high_gco2_per_kwh: float


class Deferral(Record, frozen=True, kw_only=True):
    """Waiting weighed against placing now (``toogreen.domain.deferral``): the wait, and the forecast values used."""

    until_ms: int | None = None
    zone: str | None = None
    slack_h: float | None = None
    latest_start_ms: int | None = None
    now_gco2_per_kwh: float | None = None
    window_gco2_per_kwh: float | None = None
    window_half_band_gco2_per_kwh: float | None = None
    saving_gco2_per_kwh: float
    margin_gco2_per_kwh: float
    forecasts_used: tuple[ForecastUsed, ...] = ()
    points: tuple[ForecastPointUsed, ...] = ()


class RoutingDecision(Record, frozen=True, kw_only=True):
    """One ``routing.decisions`` record: what was chosen (or not) and why, with the alternatives, exclusions and
    the zone windows used."""

    decision_id: str
    workload_id: str
    ts_ms: int
    type: DecisionKind
    chosen_node_id: str | None = None
    chosen_zone: str | None = None
    tier: int | None = None
    score: float | None = None
    carbon_part: float | None = None
    price_part: float | None = None
    utilisation_part: float | None = None
    reason: str
    mig_profile: str | None = None
    from_node_id: str | None = None
    from_zone: str | None = None
    score_gain: float | None = None
    saved_gco2: float | None = None
    move_cost_s: float | None = None
    alternatives: tuple[Alternative, ...] = ()
    grid_windows: tuple[GridWindowUsed, ...] = ()
    nodes_considered: int = 0
    nodes_eligible: int = 0
    exclusions: tuple[Exclusion, ...] = ()
    deferral: Deferral | None = None


# --- table values -------------------------------------------------------------------------------------------------


class PendingMove(Record, frozen=True, kw_only=True):
    """A move under way: from where, to where, by which decision and checkpoint (or a rollback to the origin)."""

    decision_id: str
    origin_node: str
    origin_profile: str | None = None
    origin_fraction: float = 1.0
    target_node: str
    target_profile: str | None = None
    target_fraction: float = 1.0
    target_price: float | None = None
    checkpoint_uri: str
    rollback: bool = False


class Workload(Record, frozen=True, kw_only=True):
    """The router's record of one workload (table ``workload-state``): its lifecycle state, where it runs and
    how, what it asked for, and the bookkeeping that makes replays idempotent."""

    workload_id: str
    state: WorkloadState
    decisions: int = 0  # decisions made so far: the sequence of the next decision id
    moves: int = 0
    applied_event_ids: tuple[str, ...] = ()  # the newest ones, to ignore redeliveries and own echoes
    request: WorkloadRequest | None = None
    submitted_ms: int | None = None
    node_id: str | None = None
    mig_profile: str | None = None
    compute_fraction: float = 1.0
    price_eur_per_gpu_hour: float | None = None
    progress_pct: float | None = None
    pending_move: PendingMove | None = None
    last_move_ms: int | None = None
    last_no_move_reason: str | None = None
    deferred_since_ms: int | None = None  # waiting for a cleaner window a forecast showed, since then …
    deferred_until_ms: int | None = None  # … until then (``toogreen.domain.deferral``) …
    deferred_zone: str | None = None  # … in this zone (where a node was expected to be free then)
    last_checkpoint_uri: str | None = None  # the newest checkpoint a node reported (periodic or for a move)
    resume_from: str | None = None  # re-queued off a lost node: placed by a resume from this checkpoint
    lost_node: str | None = None  # the node it was re-queued off: told to stop it should it come back

    def need_request(self) -> WorkloadRequest:
        """Its request (every workload past its submission has one)."""
        if self.request is None:
            raise ValueError(f"workload {self.workload_id} has no request")
        return self.request


class NodeTelemetry(Record, frozen=True, kw_only=True):
    """A node's rolled-up telemetry: the newest sample and a smoothed utilisation."""

    last_seen_ms: int
    util_pct: float = 0.0
    util_rolling_pct: float
    power_w: float = 0.0
    energy_j: float | None = None
    mem_used_mb: int
    mem_total_mb: int
    health: NodeHealth
    mig_slices_free: int = 0
    # when the worker applied the newest sample (its clock; None: not known): a sample applied long after it was
    # taken came from a telemetry partition replaying a backlog (``toogreen.domain.lost_nodes``)
    ingested_ms: int | None = None


class NodeState(Record, frozen=True, kw_only=True):
    """One node (table ``node-state``): its registration and its telemetry, each once seen."""

    registration: NodeRegistration | None = None
    telemetry: NodeTelemetry | None = None
    drained: bool = False  # an operator drained it: no new work is placed there until undrained
    # the node.telemetry partition its samples come on (a producer's partitioner decides it): where the placement
    # owner sends who runs there, so that the energy is accrued where the samples are
    ingest_partition: int | None = None


class Hold(Record, frozen=True, kw_only=True):
    """What the router reserved on a node for one workload (table ``node-reservations``: {workload id: hold})."""

    vram_mb: int
    mig_profile: str | None = None  # None: the whole GPU
    expected_end_ms: int | None = None  # when the workload is expected to be done there (None: not known)


class RunningShare(Record, frozen=True, kw_only=True):
    """A workload drawing energy on a node (table ``node-running``: {workload id: share}): its compute fraction
    (0: an equal split among the node's whole-GPU tenants) since when, and until when once it stopped (kept until
    the node's partition handed over what it drew there)."""

    fraction: float
    since_ms: int
    until_ms: int | None = None  # stopped here then: energy is its own up to that moment, then handed over
    price_eur_per_gpu_hour: float | None = None  # what it pays here, for the interim billing records


class RunningEntry(Record, frozen=True, kw_only=True):
    """Where a running workload is and how clean that is (table ``running-workloads``), so that grid and node
    changes find the workloads they affect."""

    node_id: str
    zone: str
    carbon_gco2_per_kwh: float
    last_rescore_ms: int


class QueueEntry(Record, frozen=True, kw_only=True):
    """A waiting workload (table ``queued-workloads``): since when, and by when it must be done."""

    queued_ms: int
    deadline_ms: int | None = None
    green_only: bool = False  # it may run on compliant nodes only: retried before the rest


class AccrualInterval(Record, frozen=True, kw_only=True):
    """Energy and carbon a workload drew on one node in one zone window (table ``workload-accruals``: a list)."""

    node_id: str
    zone: str
    window_start_ms: int
    start_ms: int
    end_ms: int
    kwh: float
    gco2: float
    carbon_gco2_per_kwh: float
    gpu_ms: float
    market_gco2: float | None = None
    methods: tuple[str, ...] = ()
    billing_id: str | None = None  # the interim billing record that billed it already (None: the final one will)


class ZoneMeta(Record, frozen=True, kw_only=True):
    """Per-zone bookkeeping kept beside the windows (table ``zone-meta``): watermark, open window keys, late
    counters."""

    watermark_ms: int = -1
    open_keys: tuple[str, ...] = ()
    late_count: int = 0
    too_late_count: int = 0


Holds = dict[str, Hold]  # a node's holds by workload id
RunningShares = dict[str, RunningShare]  # a node's running workloads by id
Accruals = list[AccrualInterval]  # a workload's intervals, oldest first
NodeAccruals = dict[str, Accruals]  # what each workload drew on one node so far (table ``node-accruals``)


class AccrualsClosed(Record, frozen=True, kw_only=True):
    """What a workload drew on one node, handed from the node's ingest partition to the placement owner once the
    workload no longer runs there."""

    workload_id: str
    node_id: str
    intervals: tuple[AccrualInterval, ...] = ()
    closed_ms: int
