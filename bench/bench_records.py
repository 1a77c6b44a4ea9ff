"""Typed records: a table value's round trip through its changelog wire form (JSON bytes), as msgspec Structs
(what ``toogreen.domain.records`` uses) against the same records as frozen dataclasses with stdlib JSON."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from bench.common import Table, median_of
from toogreen.domain.lifecycle import WorkloadState
from toogreen.domain.records import PendingMove, Workload, WorkloadRequest


@dataclass(frozen=True)
class RequestDC:
    name: str
    workload_type: str
    vram_mb: int
    expected_hours: float
    image: str | None = None
    command: str | None = None
    priority: str = "normal"
    green_only: bool = False
    max_carbon_gco2_kwh: float | None = None
    budget_eur: float | None = None
    deadline_ms: int | None = None
    checkpoint_gb: float | None = None
    submitter: str = ""


@dataclass(frozen=True)
class MoveDC:
    decision_id: str
    origin_node: str
    target_node: str
    checkpoint_uri: str
    origin_profile: str | None = None
    origin_fraction: float = 1.0
    target_profile: str | None = None
    target_fraction: float = 1.0
    target_price: float | None = None
    rollback: bool = False


@dataclass(frozen=True)
class WorkloadDC:
    workload_id: str
    state: WorkloadState
    decisions: int = 0
    moves: int = 0
    applied_event_ids: tuple[str, ...] = ()
    request: RequestDC | None = None
    submitted_ms: int | None = None
    node_id: str | None = None
    mig_profile: str | None = None
    compute_fraction: float = 1.0
    price_eur_per_gpu_hour: float | None = None
    progress_pct: float | None = None
    pending_move: MoveDC | None = None
    last_move_ms: int | None = None
    last_no_move_reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> WorkloadDC:
        return cls(**{**d, "state": WorkloadState(d["state"]), "applied_event_ids": tuple(d["applied_event_ids"]),
                      "request": RequestDC(**d["request"]) if d.get("request") else None,
                      "pending_move": MoveDC(**d["pending_move"]) if d.get("pending_move") else None})  # fmt: skip


def _values() -> tuple[Workload, WorkloadDC]:
    request = {"name": "job", "workload_type": "training", "image": "img", "vram_mb": 16_000, "expected_hours": 4.0,
               "deadline_ms": 1_800_000_000_000, "submitter": "dev-1"}  # fmt: skip
    move = {"decision_id": "d" * 20, "origin_node": "dc-de-h100-1", "target_node": "rc-fr-h100-2",
            "checkpoint_uri": "ckpt://dc-de-h100-1/w1/" + "d" * 20, "target_price": 2.1}  # fmt: skip
    common = {"workload_id": "wl-0123456789abcdef", "state": WorkloadState.MIGRATING, "decisions": 3, "moves": 1,
              "applied_event_ids": tuple(f"e{i}:{'x' * 20}" for i in range(16)), "submitted_ms": 1_700_000_000_000,
              "node_id": "dc-de-h100-1", "compute_fraction": 1.0, "price_eur_per_gpu_hour": 2.4,
              "progress_pct": 40.0}  # fmt: skip
    ours = Workload(**common, request=WorkloadRequest(**request), pending_move=PendingMove(**move))
    theirs = WorkloadDC(**common, request=RequestDC(**request), pending_move=MoveDC(**move))
    return ours, theirs


def run(runs: int = 5, n: int = 20_000) -> Table:
    ours, theirs = _values()
    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder(Workload)

    def per_op(fn: Any) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6

    cases = {
        "msgspec Struct: JSON bytes round trip": lambda: decoder.decode(encoder.encode(ours)),
        "frozen dataclass + stdlib json: JSON bytes round trip": lambda: WorkloadDC.from_wire(
            json.loads(json.dumps(theirs.to_wire()))
        ),
        "msgspec Struct: wire dict round trip (to_wire / from_wire)": lambda: Workload.from_wire(ours.to_wire()),
        "frozen dataclass: wire dict round trip (asdict / constructor)": lambda: WorkloadDC.from_wire(theirs.to_wire()),
        "msgspec Struct: one field replaced": lambda: msgspec.structs.replace(ours, progress_pct=41.0),
        "frozen dataclass: one field replaced": lambda: dataclasses.replace(theirs, progress_pct=41.0),
    }
    assert decoder.decode(encoder.encode(ours)) == ours
    assert WorkloadDC.from_wire(json.loads(json.dumps(theirs.to_wire(), default=str))) == theirs
    medians = {name: median_of(runs, lambda fn=fn: per_op(fn))[0] for name, fn in cases.items()}
    table = Table(
        "Typed records: a workload-state table value through its wire form",
        f"one workload's state (request, pending move, 16 applied event ids), medians of {runs} runs of "
        f"{n:,} operations each, one core",
        ["operation", "µs per value (median)"],
    )
    table.rows += [[name, f"{us:.2f}"] for name, us in medians.items()]
    names = list(medians)
    table.notes.append(
        f"JSON bytes round trip: msgspec {medians[names[1]] / medians[names[0]]:.1f}x faster than the dataclasses; "
        f"wire dict: {medians[names[3]] / medians[names[2]]:.1f}x; "
        f"replace: {medians[names[5]] / medians[names[4]]:.1f}x."
    )
    return table


if __name__ == "__main__":
    print(run().markdown())
