"""The Faust agents: decode → call the pure domain logic → emit. Nothing else happens here.

- ``zone_windows``: grid readings into event-time tumbling windows per zone (hopping windows are assembled from
  them), both emitted on ``zone.windows``, and each zone's routing view.
- ``node_registrations`` / ``node_telemetry``: each node's state and routing view.
- ``zone_forecasts``: the latest intensity forecast per zone (``grid.forecasts``), which the router reads.
- ``workloads``: the workload state machine and the router (``routing.decisions``, ``node.commands``).
- ``node_views`` / ``zone_views`` / ``accruals_closed``: the placement owner's side of the ingest agents' changes.
- timers on the placement owner: ``retry_queue`` (the queue, late settlements), ``lost_node_check`` (silent nodes).

Ownership (issue 11, see ``streams/app.py``): the ingest agents (the first three) run on every worker, each on its
partitions; the placement agents (the last four) consume single-partition topics, so they run on one worker, the
owner of partition 0, which alone writes the router's tables.

Every table write goes through the agent's :class:`~streams.checkpoint.Checkpoint`.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from functools import lru_cache, partial
from typing import Any, TypeVar

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faust.types import EventT, StreamT, TableT

from streams import checkpoint as checkpoints
from streams.app import (
    ACCRUALS_CLOSED_TOPIC,
    INGEST_ZONE_VIEWS_TOPIC,
    NODE_SHARES_TOPIC,
    NODE_VIEWS_TOPIC,
    WINDOW_SPECS,
    ZONE_VIEWS_TOPIC,
    app,
    forecast_topic,
    grid_topic,
    ingest_zone_view_table,
    node_accrual_table,
    node_reservation_table,
    node_running_table,
    node_share_table,
    node_state_table,
    pending_settlement_table,
    queued_workload_table,
    registry_topic,
    routing_node_table,
    running_workload_table,
    settings,
    settlement_outbox_table,
    telemetry_topic,
    workload_accrual_table,
    workload_outbox_table,
    workload_state_table,
    workload_topic,
    zone_forecast_table,
    zone_meta_table,
    zone_view_table,
    zone_window_table,
)
from streams.checkpoint import Checkpoint
from streams.emit import Emitter, KafkaEmitter
from toogreen.codec import DecodeError, decode
from toogreen.domain.accounting import PowerPoint, accrue_energy
from toogreen.domain.clock import SYSTEM_CLOCK, Clock
from toogreen.domain.fleet import Fleet
from toogreen.domain.forecast import Forecast, ForecastError, newer
from toogreen.domain.lifecycle import TERMINAL
from toogreen.domain.lost_nodes import PresumedLost, check_lost_nodes
from toogreen.domain.node_state import apply_registration, apply_telemetry, merge_view, to_node_view
from toogreen.domain.placement import Placement
from toogreen.domain.records import (
    Accruals,
    AccrualsClosed,
    EventKind,
    GridReading,
    NodeRegistration,
    NodeState,
    Record,
    RunningShare,
    RunningShares,
    TelemetrySample,
    Workload,
    WorkloadEvent,
    ZoneMeta,
)
from toogreen.domain.rerouting import workloads_on_node, workloads_to_rescore, workloads_to_rescore_on_capacity
from toogreen.domain.router import NEEDS_VIEWS, handle_workload_event, retry_order, workload_event
from toogreen.domain.settlement import interim_billing, metering_boundaries, settle
from toogreen.domain.validation import (
    validate_grid_reading,
    validate_registration,
    validate_telemetry,
    validate_workload_request,
)
from toogreen.domain.views import ZoneView
from toogreen.domain.windows import Surplus, WindowAggregate
from toogreen.domain.zone_state import apply_reading, keys_needed, republished
from toogreen.signing import load_or_create_key, sign_receipt
from toogreen.topics import (
    BILLING_RECORDS,
    GRID_FORECASTS,
    GRID_READINGS,
    NODE_COMMANDS,
    NODE_REGISTRY,
    NODE_TELEMETRY,
    SETTLEMENT_RECEIPTS,
    WORKLOAD_EVENTS,
    ZONE_WINDOWS,
)

emitter: Emitter = KafkaEmitter(app)
clock: Clock = SYSTEM_CLOCK

R = TypeVar("R", bound=Record)
Validator = Callable[[dict[str, Any]], list[str]]


async def decode_or_dead_letter(
    event: EventT, topic: str, stage: str, validator: Validator, record_type: type[R]
) -> R | None:
    """The decoded, validated record, or None after dead-lettering it with the reason."""
    try:
        wire = decode(topic, event.message.value)
    except DecodeError as exc:
        await emitter.dead_letter(event, stage, str(exc))
        return None
    problems = validator(wire)
    if problems:
        await emitter.dead_letter(event, stage, f"{topic}: invalid record: {'; '.join(problems)}")
        return None
    try:
        return record_type.from_wire(wire)
    except msgspec.ValidationError as exc:
        await emitter.dead_letter(event, stage, f"{topic}: invalid record: {exc}")
        return None


# Tables whose values carry the input offsets they applied: a redelivered event is applied to each of them once.
STAMPED_TABLES = (zone_window_table, zone_meta_table, node_state_table)


def checkpoint(stream: StreamT, max_delay_ms: float | None = None, outbox: TableT | None = None) -> Checkpoint:
    w, c = settings.worker, settings.checkpoint
    delay = w.coalesce_max_delay_ms if max_delay_ms is None else max_delay_ms
    return Checkpoint(stream, emitter, w.coalesce_max_events, delay, clock, STAMPED_TABLES, c.state_wait_s,
                      c.max_runs_in_flight, outbox, c.outbox_keep_s)  # fmt: skip


@app.agent(grid_topic)
async def zone_windows(stream: StreamT) -> None:
    run = checkpoint(stream)
    async for event in run.events():
        reading = await decode_or_dead_letter(
            event, GRID_READINGS.name, "zone_windows", validate_grid_reading, GridReading
        )
        if reading is not None and (view := await absorb_reading(run, event, reading)) is not None:
            # the zone's newest view goes to the placement owner once per run, and to every ingest partition
            run.emit_latest(("zone-view", view.zone), ZONE_VIEWS_TOPIC.get_topic_name(), view.zone,
                            partial(_same, view), internal=True)  # fmt: skip
            for partition in range(INGEST_ZONE_VIEWS_TOPIC.partitions or 1):
                run.emit_latest(("ingest-zone-view", view.zone, partition), INGEST_ZONE_VIEWS_TOPIC.get_topic_name(),
                                view.zone, partial(_same, view), internal=True, partition=partition)  # fmt: skip


@app.agent(INGEST_ZONE_VIEWS_TOPIC)
async def ingest_zone_views(stream: StreamT) -> None:
    """Each zone's newest view, kept on every ingest partition for the carbon of the energy accrued there."""
    run = checkpoint(stream)
    async for event in run.events():
        view = await decode_internal_or_dead_letter(event, _zone_view, "ingest_zone_views")
        if view is not None:
            run.set(ingest_zone_view_table, view.zone, view)


def _same(value: Any) -> Any:
    return value


def _hopping_record(assemble_hop: Callable[[], WindowAggregate]) -> Record:
    return assemble_hop().to_record(Surplus())


async def absorb_reading(run: Checkpoint, event: EventT, reading: GridReading) -> ZoneView | None:
    """Fold one reading into its zone's windows; the zone's new routing view, if it has one. A redelivered reading
    (a worker died before its offset was committed) is left out of what already holds it: the zone's bookkeeping
    and its tumbling window each carry the last reading they applied, in the same changelog record."""
    grace_ms, keep_ms = settings.windows.grace_s * 1000, settings.windows.keep_s * 1000
    zone = reading.zone
    meta_has_it = run.applied(zone_meta_table, zone)
    meta = run.get(zone_meta_table, zone) or ZoneMeta()
    keys = keys_needed(zone, reading.ts_ms, meta, WINDOW_SPECS)
    windows = {k: aggregate for k in keys if (aggregate := run.get(zone_window_table, k)) is not None}
    outcome = apply_reading(reading, windows, meta, WINDOW_SPECS, grace_ms, keep_ms, settings.surplus)
    window_has_it = outcome.stored is not None and run.applied(zone_window_table, outcome.stored[0])
    if meta_has_it and (outcome.too_late or window_has_it):
        # a redelivery both already hold (or dead-lettered before): its windows are published again, as they are
        if (again := republished(zone, reading.ts_ms, windows, WINDOW_SPECS, settings.surplus)) is not None:
            publish_windows(run, zone, *again)
        return None
    if not meta_has_it:
        run.set(zone_meta_table, zone, outcome.meta)
    if outcome.too_late:
        await emitter.dead_letter(
            event,
            "zone_windows",
            f"reading at {reading.ts_ms} is older than the watermark {outcome.meta.watermark_ms} "
            f"minus the {settings.windows.grace_s} s grace period: too late for any window",
        )
        return None
    assert outcome.stored is not None  # a reading in time always lands in its tumbling window
    key, tumbling, _surplus = outcome.stored  # the tumbling window is stored; hopping ones are assembled from it
    for expired in outcome.expired_keys:
        run.pop(zone_window_table, expired)
    if window_has_it:  # its zone's bookkeeping did not (a worker died with the run half delivered)
        return None
    run.set(zone_window_table, key, tumbling)
    publish_windows(run, zone, outcome.stored, outcome.hopping)
    return outcome.view


def publish_windows(
    run: Checkpoint,
    zone: str,
    stored: tuple[str, WindowAggregate, Surplus],
    hopping: Sequence[tuple[str, Callable[[], WindowAggregate]]],
) -> None:
    """A reading's tumbling window and the hopping windows holding it, on ``zone.windows`` once per run."""
    key, tumbling, surplus = stored
    run.emit_latest(key, ZONE_WINDOWS.name, zone, partial(tumbling.to_record, surplus))
    for hop_key, assemble_hop in hopping:
        run.emit_latest(hop_key, ZONE_WINDOWS.name, zone, partial(_hopping_record, assemble_hop))


@app.agent(forecast_topic)
async def zone_forecasts(stream: StreamT) -> None:
    run = checkpoint(stream, max_delay_ms=0)  # a few a day per zone: each is written at once
    async for event in run.events():
        try:
            forecast = Forecast.from_record(decode(GRID_FORECASTS.name, event.message.value))
        except (DecodeError, ForecastError) as exc:
            await emitter.dead_letter(event, "zone_forecasts", str(exc))
            continue
        if newer(zone_forecast_table.get(forecast.zone), forecast):
            run.set(zone_forecast_table, forecast.zone, forecast)


def routing_forecasts() -> dict[str, Forecast] | None:
    """The latest forecast per zone, when the router may defer (None: it never considers waiting)."""
    return dict(zone_forecast_table.items()) if settings.forecast.deferral.enabled else None


@app.agent(registry_topic)
async def node_registrations(stream: StreamT) -> None:
    run = checkpoint(stream, max_delay_ms=0)  # rare: each registration is written at once
    async for event in run.events():
        reg = await decode_or_dead_letter(
            event, NODE_REGISTRY.name, "node_registrations", validate_registration, NodeRegistration
        )
        if reg is not None:
            state = apply_registration(run.get(node_state_table, reg.node_id), reg)
            run.set(node_state_table, reg.node_id, state)
            node_view_changed(run, reg.node_id, state)


def node_view_changed(run: Checkpoint, node_id: str, state: NodeState) -> None:
    """The node's newest state goes to the placement owner once per run."""
    run.emit_latest(("node-view", node_id), NODE_VIEWS_TOPIC.get_topic_name(), node_id, partial(_same, state),
                    internal=True)  # fmt: skip


@app.agent(telemetry_topic)
async def node_telemetry(stream: StreamT) -> None:
    run = checkpoint(stream)
    async for event in run.events():
        sample = await decode_or_dead_letter(
            event, NODE_TELEMETRY.name, "node_telemetry", validate_telemetry, TelemetrySample
        )
        if sample is None:
            continue
        node_id = sample.node_id
        if run.applied(node_state_table, node_id):
            continue  # a redelivered sample the node's state already took in: its energy is accrued already
        before = run.get(node_state_table, node_id)
        running = node_share_table.get(node_id) or {}  # the owner's word on who runs here
        history = _recent_points.get(node_id)
        if history is None:
            history = _recent_points[node_id] = deque()
        drawn = node_accrual_table.get(node_id) or {}
        after = dict(drawn)
        if running and before is not None and before.registration is not None:
            zone = ingest_zone_view_table.get(before.registration.zone)
            after.update(accrue_energy(running, before, sample, zone, drawn, metering_ms(), history))
        remember_point(history, before, sample)
        # stopped here: hand its energy (up to the stop) to the owner, at every sample until the owner's word that it
        # took it (the share gone) comes back; the hand-over is an effect a worker killed after this state went out
        # may never have sent, and the owner takes it once
        stopped = [w for w in after if stopped_here(running.get(w), sample.ts_ms)]
        for workload_id in stopped:
            if workload_id not in running:
                del after[workload_id]  # the owner took it
                continue
            closed = AccrualsClosed(workload_id=workload_id, node_id=node_id, intervals=tuple(after[workload_id]),
                                    closed_ms=sample.ts_ms)  # fmt: skip
            run.emit_latest(("closed", workload_id, node_id), ACCRUALS_CLOSED_TOPIC.get_topic_name(), workload_id,
                            partial(_same, closed), internal=True)  # fmt: skip
        await bill_interim(node_id, before, sample, running, after, handed_over=stopped)
        if after != drawn:
            if after:
                run.set(node_accrual_table, node_id, after)
            else:
                run.pop(node_accrual_table, node_id)
        state = apply_telemetry(before, sample, clock.now_ms())
        if state.ingest_partition != event.message.partition:
            state = msgspec.structs.replace(state, ingest_partition=event.message.partition)
        run.set(node_state_table, node_id, state)
        node_view_changed(run, node_id, state)


# Each node's recent samples, in this worker's memory only (a new owner of the partition starts without them): a
# share that reaches the partition late still accrues what it drew since it started (accrue_energy).
_recent_points: dict[str, deque[PowerPoint]] = {}


def remember_point(history: deque[PowerPoint], before: NodeState | None, sample: TelemetrySample) -> None:
    """Keep the sample ``before`` ended with (the newest ``history`` lacks), as far back as the lookback."""
    if before is not None and before.telemetry is not None:
        tel = before.telemetry
        if not history or history[-1].ts_ms < tel.last_seen_ms:
            history.append(PowerPoint(tel.last_seen_ms, tel.power_w, tel.energy_j))
    horizon_ms = sample.ts_ms - int(settings.settlement.accrual_lookback_s * 1000)
    while history and history[0].ts_ms < horizon_ms:
        history.popleft()


def metering_ms() -> int:
    return int(settings.settlement.metering_interval_s * 1000)


def stopped_here(share: RunningShare | None, sample_ms: int) -> bool:
    """Whether what a workload drew on the node is complete at this sample: it no longer runs there, or it stopped
    at or before the sample (then the sample's energy up to the stop was its own)."""
    return share is None or (share.until_ms is not None and sample_ms >= share.until_ms)


async def bill_interim(
    node_id: str,
    before: NodeState | None,
    sample: TelemetrySample,
    running: RunningShares,
    after: dict[str, Accruals],
    handed_over: Collection[str] = (),
) -> None:
    """Each metering interval this sample closed: a billing record per workload running here for what it drew in
    it (ids deterministic: a replayed sample bills nothing twice); its intervals are marked billed in ``after``.
    What was handed over to the owner (``handed_over``) is the owner's to bill, in the final record."""
    prev_ms = before.telemetry.last_seen_ms if before is not None and before.telemetry is not None else sample.ts_ms
    for boundary_ms in metering_boundaries(prev_ms, sample.ts_ms, metering_ms()):
        for workload_id, intervals in list(after.items()):
            if workload_id in handed_over:
                continue
            share = running.get(workload_id)
            price = share.price_eur_per_gpu_hour if share is not None else None
            billing, after[workload_id] = interim_billing(workload_id, node_id, intervals, boundary_ms, price,
                                                          settings)  # fmt: skip
            if billing is not None:
                await emitter.emit(BILLING_RECORDS.name, workload_id, billing)


def _validate_workload_event(event: dict[str, Any]) -> list[str]:
    if event["type"] == "submitted":
        if event.get("request") is None:
            return ["a submitted event needs its request"]
        return validate_workload_request(event["request"])
    return []


class RoutingViews:
    """The router's fleet: node views kept in step with the tables, rebuilt only for the nodes marked changed, and
    all of them after the tables were recovered from their changelogs (and every ``fleet_resync_s``, as a safety
    net)."""

    def __init__(self, resync_s: float, clock: Clock) -> None:
        self.resync_s, self.clock = resync_s, clock
        self.fleet = Fleet()
        self.changed_nodes: set[str] = set()
        self.synced_at = float("-inf")

    def node_changed(self, node_id: str) -> None:
        self.changed_nodes.add(node_id)

    def keys_restored(self, undone: list[tuple[TableT, Any]]) -> None:
        """A rolled-back run's writes were undone (``Checkpoint.on_rolled_back``): the nodes whose holds or routing
        state went back are rebuilt from the tables on the next routing, so the fleet never keeps a hold (or a free
        GPU) that the tables no longer have."""
        for table, key in undone:
            if table is node_reservation_table or table is routing_node_table:
                self.node_changed(str(key))

    def resync(self) -> None:
        """Rebuild every node's view on the next routing (after the tables were replaced wholesale)."""
        self.synced_at = float("-inf")

    def _refresh(self, node_id: str) -> None:
        state = routing_node_table.get(node_id)
        view = None if state is None else to_node_view(state, node_reservation_table.get(node_id) or {})
        if view is None:
            self.fleet.remove(node_id)
        else:
            self.fleet.upsert(view)

    def inputs(self) -> tuple[Fleet, dict[str, ZoneView]]:
        """Every routable node and zone as the tables hold them now."""
        now = self.clock.monotonic_s()
        if now - self.synced_at >= self.resync_s:
            self.synced_at = now
            self.changed_nodes.clear()
            for node_id in {*routing_node_table.keys(), *(v.node_id for v in self.fleet)}:
                self._refresh(node_id)
        while self.changed_nodes:
            self._refresh(self.changed_nodes.pop())
        return self.fleet, dict(zone_view_table.items())


routing = RoutingViews(settings.worker.fleet_resync_s, clock)


def routing_inputs() -> tuple[Fleet, dict[str, ZoneView]]:
    return routing.inputs()


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust's own signal type rejects any coroutine
async def _partitions_revoked(_app: Any, *_args: Any, **_kwargs: Any) -> None:
    checkpoints.partitions_revoked()  # open and in-flight runs are void: their events come again (checkpoint.py)


@app.on_rebalance_complete.connect  # type: ignore[arg-type]  # Faust's own signal type rejects any coroutine
async def _tables_recovered(_app: Any, **_kwargs: Any) -> None:
    routing.resync()  # what the changelogs restored is in the tables now
    # What is alive now (code, the restored tables) mostly stays alive: keep it out of the cyclic collector's full
    # passes, which otherwise stalled the worker for 40-70 ms each (the p99 of routing at 500/s). Frozen objects
    # are still freed by reference counting; only garbage cycles among them would stay.
    gc.collect()
    gc.freeze()


class SharesToNodes(MutableMapping[str, RunningShares]):
    """The owner's ``node-running`` table, through its checkpoint; each node whose shares a run changed has them
    sent, once, at the run's end, to the node's own ingest partition (``NODE_SHARES_TOPIC``, the partition number
    its telemetry comes on: outside producers partition ``node.telemetry`` as they like, docs/producers.md)."""

    def __init__(self, run: Checkpoint) -> None:
        self.run, self.table = run, run.table(node_running_table)

    def __getitem__(self, node_id: str) -> RunningShares:
        shares: RunningShares = self.table[node_id]
        return shares

    def __setitem__(self, node_id: str, shares: RunningShares) -> None:
        self.table[node_id] = shares
        self._send(node_id)

    def __delitem__(self, node_id: str) -> None:
        del self.table[node_id]
        self._send(node_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def _send(self, node_id: str) -> None:
        node = routing_node_table.get(node_id)
        partition = node.ingest_partition if node is not None else None  # None: the key's (murmur2)
        if partition is not None and partition >= (NODE_SHARES_TOPIC.partitions or 1):
            partition = None  # node.telemetry has more partitions than the worker was set up with
        self.run.emit_latest(("node-shares", node_id), NODE_SHARES_TOPIC.get_topic_name(), node_id,
                             partial(_shares_now, node_id), internal=True, partition=partition)  # fmt: skip


def _shares_now(node_id: str) -> RunningShares:
    shares: RunningShares = node_running_table.get(node_id) or {}
    return shares


_shares = msgspec.json.Decoder(RunningShares)


@app.agent(NODE_SHARES_TOPIC)
async def node_shares(stream: StreamT) -> None:
    """Who runs on each node, as the owner last said, kept on the node's own partition for its energy accrual."""
    run = checkpoint(stream)
    async for event in run.events():
        shares = await decode_internal_or_dead_letter(event, _shares, "node_shares")
        if shares is None:
            continue
        node_id = (event.message.key or b"").decode()
        if shares:
            run.set(node_share_table, node_id, shares)
        else:
            run.pop(node_share_table, node_id)


def placement(run: Checkpoint) -> Placement:
    """The router's books over the tables, written through the agent's checkpoint."""
    return Placement(
        workloads=run.table(workload_state_table),
        holds=run.table(node_reservation_table),
        shares=SharesToNodes(run),
        running=run.table(running_workload_table),
        queue=run.table(queued_workload_table),
    )


@app.agent(workload_topic)
async def workloads(stream: StreamT) -> None:
    # the run's state (tables, the owner's own workload events) goes out first; its decisions and node commands once
    # the brokers acked it (streams/checkpoint.py)
    run = checkpoint(stream, settings.worker.router_coalesce_max_delay_ms, outbox=workload_outbox_table)
    run.on_rolled_back = routing.keys_restored
    books = placement(run)
    async for event in run.events():
        record = await decode_or_dead_letter(
            event, WORKLOAD_EVENTS.name, "workloads", _validate_workload_event, WorkloadEvent
        )
        if record is None:
            continue
        workload_id = record.workload_id
        routes = record.type in NEEDS_VIEWS
        nodes, zones = routing.inputs() if routes else (Fleet(), {})
        result = handle_workload_event(record, workload_state_table.get(workload_id), nodes, zones, settings,
                                       routing_forecasts() if routes else None)  # fmt: skip
        if result.rejected_reason:
            await emitter.dead_letter(event, "workloads", result.rejected_reason)
            continue

        def views(nodes: Fleet = nodes, zones: Mapping[str, ZoneView] = zones) -> tuple[Fleet, Mapping[str, ZoneView]]:
            return (nodes, zones) if len(nodes) else routing.inputs()

        for node_id in books.apply(workload_id, record.ts_ms, result, views, clock.now_ms()):
            routing.node_changed(node_id)
        # The owner's own workload events are state, sent with the run's changelog records; its node commands and
        # decisions leave once the brokers acked them (streams/checkpoint.py), so a node's report always lands in the
        # log after the event that caused it. (This supersedes main's emit_in_log_order, which awaited the events
        # before a command within one result.)
        for out in result.emits:
            (run.log if out.topic == WORKLOAD_EVENTS.name else run.emit)(out.topic, out.key, out.record)
        if result.settle and result.state is not None:
            # settled once its last node handed over what it drew there (accruals_closed), or after a wait
            run.set(pending_settlement_table, workload_id, result.state)
        for freed in result.release:
            now = clock.now_ms()
            for other in workloads_to_rescore_on_capacity(freed, running_workload_table, now, settings.migration):
                await request_rescore(run, other, now, f"capacity freed on {freed}")


_node_state = msgspec.json.Decoder(NodeState)
_zone_view = msgspec.json.Decoder(ZoneView)
_closed = msgspec.json.Decoder(AccrualsClosed)
D = TypeVar("D")


async def decode_internal_or_dead_letter(event: EventT, decoder: msgspec.json.Decoder[D], stage: str) -> D | None:
    """One of the worker's own records (JSON wire form), or None with a dead letter saying why."""
    try:
        return decoder.decode(event.message.value or b"")
    except msgspec.ValidationError as exc:
        await emitter.dead_letter(event, stage, str(exc))
        return None


@app.agent(NODE_VIEWS_TOPIC)
async def node_views(stream: StreamT) -> None:
    """The owner's view of each node; a health change re-scores what runs there."""
    run = checkpoint(stream, settings.worker.router_coalesce_max_delay_ms)
    run.on_rolled_back = routing.keys_restored
    async for event in run.events():
        state = await decode_internal_or_dead_letter(event, _node_state, "node_views")
        if state is None:
            continue
        node_id = (event.message.key or b"").decode()
        before = routing_node_table.get(node_id)
        state = merge_view(before, state)
        run.set(routing_node_table, node_id, state)
        routing.node_changed(node_id)
        was = before.telemetry.health if before is not None and before.telemetry is not None else None
        now_health = state.telemetry.health if state.telemetry is not None else None
        if was is not None and now_health is not None and was != now_health:
            now = clock.now_ms()
            for workload_id in workloads_on_node(node_id, running_workload_table):
                await request_rescore(run, workload_id, now, f"node {node_id} is now {now_health}")


@app.agent(ZONE_VIEWS_TOPIC)
async def zone_views(stream: StreamT) -> None:
    """The owner's view of each zone; a change re-scores the running workloads it affects."""
    run = checkpoint(stream, settings.worker.router_coalesce_max_delay_ms)
    changed: dict[str, ZoneView] = {}
    run.on_run_end = partial(rescore_after_grid_change, run, changed)
    async for event in run.events():
        view = await decode_internal_or_dead_letter(event, _zone_view, "zone_views")
        if view is None:
            continue
        run.set(zone_view_table, view.zone, view)
        changed[view.zone] = view


async def rescore_after_grid_change(run: Checkpoint, changed: dict[str, ZoneView]) -> None:
    """At the end of every run of zone views, however it ended (its last event, or the checkpoint's timer): re-score
    the running workloads the run's zone changes affect. Once per run and zone, and each workload at most once per
    ``rescore_min_interval_s`` (a re-score per arriving view flooded the router)."""
    views = list(changed.values())
    changed.clear()
    now = clock.now_ms()
    for zone_view in views:
        # the scan returns a list before any rescore request touches the table
        for workload_id in workloads_to_rescore(zone_view, running_workload_table, now, settings.migration):
            await request_rescore(run, workload_id, now, f"zone {zone_view.zone} window changed")


@app.agent(ACCRUALS_CLOSED_TOPIC)
async def accruals_closed(stream: StreamT) -> None:
    """What a workload drew on a node, handed over by the node's partition; an ended workload is settled once its
    last node's share is in. A redelivered hand-over replaces the same node's intervals: idempotent; one redelivered
    after the workload was settled by it sends its receipt and billing record again from the outbox (the worker that
    settled it may have been killed after its state went out and before they did)."""
    run = checkpoint(stream, settings.worker.router_coalesce_max_delay_ms, outbox=settlement_outbox_table)
    async for event in run.events():
        closed = await decode_internal_or_dead_letter(event, _closed, "accruals_closed")
        if closed is None:
            continue
        wid = closed.workload_id
        held = workload_accrual_table.get(wid) or []
        pending = pending_settlement_table.get(wid)
        workload: Workload | None = workload_state_table.get(wid)
        settled = pending is None and workload is not None and workload.state in TERMINAL
        books = placement(run)
        if books.is_repeat_hand_over(wid, closed.node_id, any(i.node_id == closed.node_id for i in held), settled):
            continue
        kept = [i for i in held if i.node_id != closed.node_id]
        run.set(workload_accrual_table, wid, sorted([*kept, *closed.intervals], key=lambda i: i.start_ms))
        books.handed_over(wid, closed.node_id)  # its energy there is complete: its share can go
        # an ended workload whose share was still held here but whose pending settlement is gone: a worker killed
        # while its settling run's changelog records landed (the pending one did, the share's did not, nor maybe the
        # receipt) is settled again from its state; the receipt and bill keep their ids, and the sinks keep one each
        ended = pending if pending is not None else (workload if settled else None)
        if ended is not None and (ended.node_id is None or ended.node_id == closed.node_id):
            await settle_workload(run, ended, closed.closed_ms)
            if pending is not None:
                run.pop(pending_settlement_table, wid)
            _pending_since.pop(wid, None)


def owns_placement() -> bool:
    """Whether this worker owns the placement log now (the one partition of ``workload.events``) and its tables are
    recovered: the owner's timers act on them. A worker is assigned the partition before its tables are read back
    from their changelogs; a lost-node check then saw running workloads on nodes the half-read table did not hold
    yet ("never sent telemetry") and re-queued one from scratch (the verifier: a workload with two initial
    placements)."""
    from faust.types import TP

    return not app.rebalancing and TP(WORKLOAD_EVENTS.name, 0) in app.assignor.assigned_actives()


_pending_since: dict[str, float] = {}  # when this worker first saw each pending settlement (monotonic s)


async def request_rescore(run: Checkpoint, workload_id: str, now_ms: int, why: str) -> None:
    """Ask the workload's own partition to re-score it (its router owns its state)."""
    entry = running_workload_table.get(workload_id)
    if entry is not None:
        run.set(running_workload_table, workload_id, msgspec.structs.replace(entry, last_rescore_ms=now_ms))
    event = workload_event(workload_id, now_ms, EventKind.RESCORE, f"rescore:{workload_id}:{now_ms}", reason=why)
    run.log(WORKLOAD_EVENTS.name, workload_id, event)


@app.timer(interval=settings.migration.queue_retry_s)
async def retry_queue() -> None:
    """On the placement owner only: queued workloads are tried again as capacity frees and the grid changes (the
    most urgent first, a bounded number per tick, so a long queue cannot drown the router in retries); an ended
    workload whose last node never handed over its energy (it went silent) is settled with what is in."""
    if not owns_placement():
        return
    now = clock.now_ms()
    mono = clock.monotonic_s()
    for workload_id, state in list(pending_settlement_table.items()):
        since = _pending_since.setdefault(workload_id, mono)
        if mono - since >= settings.worker.settle_wait_s:
            node_id = state.node_id or ""
            mine = tuple(i for i in workload_accrual_table.get(workload_id) or [] if i.node_id == node_id)
            closed = AccrualsClosed(workload_id=workload_id, node_id=node_id, intervals=mine, closed_ms=now)
            await emitter.emit_internal(ACCRUALS_CLOSED_TOPIC.get_topic_name(), workload_id, closed)
    for workload_id in retry_order(dict(queued_workload_table.items()))[: settings.migration.queue_retry_batch]:
        event = workload_event(workload_id, now, EventKind.RETRY, f"retry:{workload_id}:{now}", reason="queue retry")
        await emitter.emit(WORKLOAD_EVENTS.name, workload_id, event)


_presumed_lost: dict[str, PresumedLost] = {}  # nodes this owner presumed lost (a new owner starts afresh)


@app.timer(interval=settings.lost_nodes.check_interval_s)
async def lost_node_check() -> None:
    """On the placement owner only: a node silent past ``node_lost_after_s`` has what runs there re-queued (a
    ``rescore`` naming it, which the router applies); a node presumed lost that reports again is told to stop
    what was re-queued off it (``toogreen.domain.lost_nodes``)."""
    if not owns_placement():
        return
    check = check_lost_nodes(routing_node_table, running_workload_table, workload_state_table, _presumed_lost,
                             clock.now_ms(), settings.lost_nodes)  # fmt: skip
    for event in check.rescores:
        await emitter.emit(WORKLOAD_EVENTS.name, event.workload_id, event)
    for command in check.stops:
        await emitter.emit(NODE_COMMANDS.name, command.node_id, command)
    _presumed_lost.clear()
    _presumed_lost.update(check.presumed)


@lru_cache(maxsize=1)
def signing_key() -> Ed25519PrivateKey:
    return load_or_create_key(settings.settlement.signing_key_path)


async def settle_workload(run: Checkpoint, state: Workload, now_ms: int) -> None:
    """Receipt and billing record for what the workload ran, then forget its accruals."""
    settled = settle(state, workload_accrual_table.get(state.workload_id) or [], now_ms, settings)
    if settled is None:
        return
    receipt, billing = settled
    run.emit(SETTLEMENT_RECEIPTS.name, state.workload_id, sign_receipt(receipt, signing_key()))
    run.emit(BILLING_RECORDS.name, state.workload_id, billing)
    run.pop(workload_accrual_table, state.workload_id)


__all__ = [
    "accruals_closed",
    "ingest_zone_views",
    "lost_node_check",
    "node_registrations",
    "node_shares",
    "node_telemetry",
    "node_views",
    "routing_inputs",
    "workloads",
    "zone_views",
    "zone_windows",
]
