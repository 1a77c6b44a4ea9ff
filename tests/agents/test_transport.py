"""The worker's Kafka transport: Faust's own, with the fetch wait from the settings."""

from streams import transport
from streams.app import app, settings


async def test_the_worker_consumer_waits_at_most_the_configured_fetch_wait():
    assert type(app.transport) is transport.Transport

    async def nothing(*_args):
        return None

    consumer = app.transport.create_consumer(
        callback=nothing, on_partitions_revoked=nothing, on_partitions_assigned=nothing
    )
    thread = consumer._new_consumer_thread()
    aiokafka_consumer = thread._create_worker_consumer(app.transport)
    assert aiokafka_consumer._fetch_max_wait_ms == settings.worker.fetch_max_wait_ms == 10
