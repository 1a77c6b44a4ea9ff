"""The ingest job on bytewax (one worker, in-process; its recovery store on, so that its state is kept as the
others' is; window results are written when a window closes, which is bytewax's way).

``python -m bench.peers.bytewax_job BOOTSTRAP EVENTS OUT_TOPIC STATE_DIR`` in ``.venv-peers``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from bench.peers import job
from toogreen.codec import decode

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def flow_for(bootstrap: str, out_topic: str, progress: job.Progress) -> Dataflow:
    flow = Dataflow("peer-bytewax")
    source = kop.input("in", flow, brokers=[bootstrap], topics=[job.GRID, job.TELEMETRY], tail=False)

    def decoded(message: Any) -> tuple[str, dict[str, Any]]:
        progress.tick()
        return message.topic, decode(message.topic, message.value)

    split = op.branch("split", op.map("decode", source.oks, decoded), lambda item: item[0] == job.GRID)
    readings = op.key_on("zone", op.map("grid", split.trues, lambda item: item[1]), lambda r: r["zone"])
    clock = win.EventClock(lambda r: datetime.fromtimestamp(r["ts_ms"] / 1000, UTC), wait_for_system_duration=GRACE)

    def out(kind: str, step_ms: int) -> Any:
        def record(item: tuple[str, tuple[int, dict[str, float]]]) -> KafkaSinkMessage[bytes, bytes]:
            zone, (window_id, acc) = item
            progress.zones.add(zone)
            progress.windows_written += 1
            return KafkaSinkMessage(zone.encode(), job.window_record(zone, kind, window_id * step_ms, acc))

        return record

    tumbling = win.fold_window("tumbling", readings, clock,
                               win.TumblingWindower(length=timedelta(milliseconds=job.TUMBLING_MS), align_to=EPOCH),
                               job.empty, job.fold, job.merge)  # fmt: skip
    hopping = win.fold_window("hopping", readings, clock,
                              win.SlidingWindower(length=timedelta(milliseconds=job.HOPPING_MS),
                                                  offset=timedelta(milliseconds=job.HOP_STEP_MS), align_to=EPOCH),
                              job.empty, job.fold, job.merge)  # fmt: skip
    written = op.merge(
        "windows",
        op.map("tumbling-out", tumbling.down, out("tumbling", job.TUMBLING_MS)),
        op.map("hopping-out", hopping.down, out("hopping", job.HOP_STEP_MS)),
    )
    kop.output("out", written, brokers=[bootstrap], topic=out_topic)

    samples = op.key_on("node", op.map("telemetry", split.falses, lambda item: item[1]), lambda s: s["node_id"])

    def node_state(state: dict[str, Any] | None, sample: dict[str, Any]) -> tuple[dict[str, Any], None]:
        progress.nodes.add(sample["node_id"])
        return job.node_step(state, sample), None

    op.stateful_map("node-state", samples, node_state)
    return flow


def main(bootstrap: str, events: int, out_topic: str, state_dir: str) -> None:
    progress = job.Progress(events)
    db_dir = Path(state_dir)
    db_dir.mkdir(parents=True, exist_ok=True)
    init_db_dir(db_dir, 1)
    run_main(flow_for(bootstrap, out_topic, progress), recovery_config=RecoveryConfig(str(db_dir)))
    print(progress.report("bytewax"), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
