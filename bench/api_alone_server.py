"""The API alone over a DuckDB file holding two zones and the simulated fleet, with a writer thread committing
a grid reading every 0.5 s as the sink's batches would (a stand-in for the pipeline, labelled as such): run by
``bench_api.api_alone``. Usage: ``python -m bench.api_alone_server PORT DIR``."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import uvicorn

from api.app import create_app
from sinks.rows import grid_row
from tests.api.conftest import RecordingProducer, filled_store
from tests.builders import grid_reading
from toogreen.settings import Settings

BATCH_INTERVAL_S = 0.5


def main() -> None:
    port, directory = int(sys.argv[1]), Path(sys.argv[2])
    store = filled_store(directory / "api.duckdb")

    def batches() -> None:
        while True:
            store.write({"grid_readings": [grid_row(grid_reading("FR", int(time.time() * 1000), 50.0))]}, [])
            time.sleep(BATCH_INTERVAL_S)

    threading.Thread(target=batches, daemon=True).start()
    settings = Settings()
    uvicorn.run(
        create_app(settings, store, RecordingProducer()), host="127.0.0.1", port=port, log_level="warning",
        loop=settings.api.uvicorn_loop, http=settings.api.uvicorn_http,
    )  # fmt: skip


if __name__ == "__main__":
    main()
