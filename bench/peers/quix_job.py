"""The ingest job on quix-streams (RocksDB state with changelog topics, at-least-once, as its defaults are; a
window is written at every update, quix's ``current()``).

``python -m bench.peers.quix_job BOOTSTRAP EVENTS OUT_TOPIC STATE_DIR`` in ``.venv-peers``."""

from __future__ import annotations

import sys
from typing import Any

from quixstreams import Application
from quixstreams.models.serializers import Deserializer

from bench.peers import job
from toogreen.codec import decode

GRACE_MS = 600_000


class AvroSingleObject(Deserializer):
    def __init__(self, topic: str) -> None:
        super().__init__()
        self.topic = topic

    def __call__(self, value: bytes, ctx: Any) -> Any:
        return decode(self.topic, value)


def main(bootstrap: str, events: int, out_topic: str, state_dir: str) -> None:
    progress = job.Progress(events)
    app: Application

    def processed(_topic: str, _partition: int, _offset: int) -> None:
        if progress.tick():
            app.stop()

    app = Application(
        broker_address=bootstrap, consumer_group=f"peer-quix-{out_topic}", auto_offset_reset="earliest",
        state_dir=state_dir, on_message_processed=processed, loglevel="WARNING",
    )  # fmt: skip

    def event_time(value: Any, _headers: Any, _ts: float, _kind: Any) -> int:
        return int(value["ts_ms"])

    grid_topic = app.topic(job.GRID, value_deserializer=AvroSingleObject(job.GRID), timestamp_extractor=event_time)
    telemetry_topic = app.topic(job.TELEMETRY, value_deserializer=AvroSingleObject(job.TELEMETRY))
    out = app.topic(out_topic, value_serializer="json")

    def written(kind: str) -> Any:
        def record(window: dict[str, Any], key: Any, _ts: int, _headers: Any) -> dict[str, Any]:
            zone = key.decode() if isinstance(key, bytes) else str(key)
            progress.zones.add(zone)
            progress.windows_written += 1
            acc, n = window["value"], window["value"]["count"] or 1
            return {"zone": zone, "kind": kind, "start_ms": window["start"], "count": acc["count"],
                    "carbon_mean": acc["carbon"] / n, "renewable_mean": acc["renewable"] / n,
                    "price_mean": acc["price"] / n}  # fmt: skip

        return record

    grid = app.dataframe(grid_topic)
    grid.tumbling_window(duration_ms=job.TUMBLING_MS, grace_ms=GRACE_MS).reduce(
        reducer=job.fold, initializer=lambda reading: job.fold(job.empty(), reading)
    ).current().apply(written("tumbling"), metadata=True).to_topic(out)
    grid.hopping_window(duration_ms=job.HOPPING_MS, step_ms=job.HOP_STEP_MS, grace_ms=GRACE_MS).reduce(
        reducer=job.fold, initializer=lambda reading: job.fold(job.empty(), reading)
    ).current().apply(written("hopping"), metadata=True).to_topic(out)

    def node_state(sample: dict[str, Any], state: Any) -> dict[str, Any]:
        progress.nodes.add(sample["node_id"])
        after = job.node_step(state.get("node"), sample)
        state.set("node", after)
        return after

    app.dataframe(telemetry_topic).apply(node_state, stateful=True)
    app.run()
    print(progress.report("quix-streams"), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
