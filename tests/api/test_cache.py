"""The answer cache: the same bytes until a write commits, never another caller's answer. Tested on an app
with the read models off (with them on, they answer the dashboard's reads in front of the cache:
tests/api/test_read_models.py)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from sinks.rows import grid_row
from tests.api.conftest import ADMIN, RecordingProducer, bearer
from tests.builders import grid_reading
from toogreen.settings import ReadModelSettings, Settings


@pytest.fixture
def app(store):
    return create_app(Settings(read_models=ReadModelSettings(enabled=False)), store, RecordingProducer())


@pytest.fixture
def client(app):
    with TestClient(app, headers=ADMIN) as c:
        c.store = app.state.store
        yield c


def _cache(app):
    layer = app.middleware_stack
    while layer is not None and type(layer).__name__ != "AnswerCache":
        layer = getattr(layer, "app", None)
    return layer


def test_a_read_is_served_again_until_a_write_lands(client):
    cache = _cache(client.app)
    first = client.get("/api/v1/zones").json()
    hits = cache.hits
    assert client.get("/api/v1/zones").json() == first and cache.hits == hits + 1
    client.store.write({"grid_readings": [grid_row(grid_reading("PT", int(time.time() * 1000), 99.0))]}, [])
    after = {z["zone"] for z in client.get("/api/v1/zones").json()}
    assert after == {"FR", "DE", "PT"}


def test_answers_are_kept_per_token(client, anon):
    token = client.post("/api/v1/admin/tokens", json={"role": "gamer", "subject": "camille"}).json()["token"]
    admin_nodes = anon.get("/api/v1/nodes", headers=ADMIN).json()
    gamer_nodes = anon.get("/api/v1/nodes", headers=bearer(token)).json()
    assert len(admin_nodes) == 20 and [n["node_id"] for n in gamer_nodes] == ["gm-fr-4090-1"]
    assert anon.get("/api/v1/nodes").status_code == 401
    assert anon.get("/api/v1/nodes", headers=bearer("forged")).status_code == 401


async def test_concurrent_misses_compute_the_answer_once(app):
    import asyncio

    import httpx

    cache = None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=ADMIN) as http:
        await http.get("/healthz")  # builds the middleware stack
        cache = _cache(app)
        answers = await asyncio.gather(*(http.get("/api/v1/nodes") for _ in range(20)))
    assert {r.status_code for r in answers} == {200} and len({r.content for r in answers}) == 1
    assert cache.misses == 1 and cache.hits == 19
