"""The answer cache: the same bytes until a write commits, never another caller's answer."""

from __future__ import annotations

import time

from sinks.rows import grid_row
from tests.api.conftest import ADMIN, bearer
from tests.builders import grid_reading


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
