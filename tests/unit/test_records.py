"""The typed records: one wire form each, and the ``zone.windows`` field list defined once, as the schema's."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import grid_reading, submission
from toogreen import SCHEMA_DIR
from toogreen.codec import decode, encode
from toogreen.domain import records
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.records import (
    AccrualInterval,
    DecisionKind,
    EventKind,
    Hold,
    NodeAction,
    NodeCommand,
    NodeHealth,
    NodeKind,
    NodeRegistration,
    PendingMove,
    RoutingDecision,
    Workload,
    WorkloadEvent,
    ZoneWindow,
)
from toogreen.domain.windows import Surplus, WindowSpec, empty_window


def _avro_fields(schema_file: str) -> list[str]:
    return [f["name"] for f in json.loads((SCHEMA_DIR / schema_file).read_text())["fields"]]


def _avro_symbols(schema_file: str, field: str) -> list[str]:
    (spec,) = [f for f in json.loads((SCHEMA_DIR / schema_file).read_text())["fields"] if f["name"] == field]
    return spec["type"]["symbols"]


def test_the_zone_window_record_has_the_schemas_fields_in_order():
    assert list(ZoneWindow.__struct_fields__) == _avro_fields("zone_window.avsc")


def test_event_and_command_records_have_their_schemas_fields_and_kinds():
    assert list(WorkloadEvent.__struct_fields__) == _avro_fields("workload_event.avsc")
    assert list(NodeCommand.__struct_fields__) == _avro_fields("node_command.avsc")
    assert list(RoutingDecision.__struct_fields__) == _avro_fields("routing_decision.avsc")
    assert [k.value for k in DecisionKind] == _avro_symbols("routing_decision.avsc", "type")
    assert [k.value for k in EventKind] == _avro_symbols("workload_event.avsc", "type")
    assert [k.value for k in NodeAction] == _avro_symbols("node_command.avsc", "action")
    assert [k.value for k in NodeKind] == _avro_symbols("node_registry.avsc", "node_type")
    assert [k.value for k in NodeHealth] == _avro_symbols("node_telemetry.avsc", "health")


def test_a_window_record_travels_through_the_avro_codec_unchanged():
    window = empty_window("FR", WindowSpec("tumbling", 300_000, 300_000), 0).add(grid_reading(ts_ms=1, carbon=42.0))
    record = window.to_record(Surplus())
    assert ZoneWindow.from_wire(decode("zone.windows", encode("zone.windows", record))) == record


def test_a_submission_travels_through_the_avro_codec_unchanged():
    event = submission()
    assert WorkloadEvent.from_wire(decode("workload.events", encode("workload.events", event))) == event
    assert event.type is EventKind.SUBMITTED and event.request is not None and event.request.vram_mb == 16_000


def test_a_wire_form_with_a_wrong_type_is_refused_with_the_field():
    with pytest.raises(msgspec.ValidationError, match="vram_mb"):
        Hold.from_wire({"vram_mb": "lots"})


def test_fields_a_record_does_not_know_are_ignored():
    registry = {"node_id": "n", "provider": "p", "node_type": "gamer", "gpu_model": "RTX 4090", "vram_mb": 24_576,
                "zone": "FR", "lat": 1.0, "lng": 2.0, "wallet": "w", "ts_ms": 5}  # fmt: skip
    reg = NodeRegistration.from_wire(registry)
    assert reg.node_type is NodeKind.GAMER and reg.pue == 1.0


def test_records_are_immutable():
    with pytest.raises(AttributeError):
        Hold(vram_mb=1).vram_mb = 2  # type: ignore[misc]


def test_the_wire_form_of_a_state_written_before_the_records_still_reads():
    """A changelog written by the dict-based router (keys absent rather than null, lists for tuples)."""
    old = {"workload_id": "w1", "decisions": 1, "moves": 0, "state": "migrating", "applied_event_ids": ["a", "b"],
           "request": {"name": "j", "workload_type": "training", "vram_mb": 1000, "expected_hours": 1.0},
           "node_id": "n1", "compute_fraction": 1.0,
           "pending_move": {"decision_id": "d", "origin_node": "n1", "origin_profile": None, "origin_fraction": 1.0,
                            "target_node": "n2", "target_profile": None, "target_fraction": 1.0,
                            "target_price": 2.0, "checkpoint_uri": "ckpt://n1/w1/d"}}  # fmt: skip
    state = Workload.from_wire(old)
    assert state.state is WorkloadState.MIGRATING and state.applied_event_ids == ("a", "b")
    assert state.pending_move == PendingMove(decision_id="d", origin_node="n1", target_node="n2", target_price=2.0,
                                             checkpoint_uri="ckpt://n1/w1/d")  # fmt: skip


_floats = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(
    st.builds(
        AccrualInterval,
        node_id=st.text(max_size=5),
        zone=st.text(max_size=5),
        window_start_ms=st.integers(0, 2**40),
        start_ms=st.integers(0, 2**40),
        end_ms=st.integers(0, 2**40),
        kwh=_floats,
        gco2=_floats,
        carbon_gco2_per_kwh=_floats,
        gpu_ms=_floats,
        market_gco2=st.none() | _floats,
        methods=st.lists(st.text(max_size=5), max_size=3).map(tuple),
    )
)
def test_a_record_survives_its_wire_form_and_its_json(interval):
    assert AccrualInterval.from_wire(interval.to_wire()) == interval
    assert msgspec.json.decode(msgspec.json.encode(interval), type=AccrualInterval) == interval
    assert AccrualInterval.from_wire(json.loads(json.dumps(interval.to_wire()))) == interval


def test_every_record_is_named_in_the_module():
    assert {"Workload", "PendingMove", "NodeState", "Hold", "RunningShare", "RunningEntry", "QueueEntry",
            "ZoneMeta", "AccrualInterval", "WorkloadEvent", "NodeCommand"} <= set(dir(records))  # fmt: skip
