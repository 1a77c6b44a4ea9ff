"""The same ingest job written with the peers (quix-streams, bytewax), for ``bench.bench_peers``.

Each job reads ``grid.readings`` and ``node.telemetry`` (decoded with the project's own Avro codec, as the
toogreen worker does), keeps per zone a 5-minute tumbling and a 1-hour hopping (5-minute step) window of count,
mean carbon intensity, mean renewable share and mean price in event time, keeps per node its latest sample and
the energy it drew since the last one, and writes every window update to an output topic as JSON. They run in
their own virtual environment (``.venv-peers``: the peers pin other versions of confluent-kafka and pydantic than
the project's), with the project on ``PYTHONPATH`` for the codec only.

Each prints one JSON line: the events it processed, the seconds from its first to its last event, the zones and
nodes it holds at the end, and the window updates it wrote.
"""
