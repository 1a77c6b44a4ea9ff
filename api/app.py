"""The query API (FastAPI): one router per resource under ``api/routes/``, dependencies in ``api/deps.py``,
response models in ``api/responses.py``, the read queries in ``sinks/queries.py``. Handlers stay thin: read
DuckDB or publish an event, and call the pure domain logic for anything computed. The dashboard's reads are
served from read models kept current as writes commit (``api/read_models.py``)."""

from __future__ import annotations

from fastapi import FastAPI

from api import errors
from api.cache import AnswerCache
from api.dashboard import mount_dashboard
from api.middleware import BodySizeLimit
from api.read_models import ReadModelFastPath, ReadModels
from api.routes import (
    admin,
    billing,
    dashboard,
    dead_letters,
    decisions,
    health,
    me,
    nodes,
    receipts,
    sustainability,
    workloads,
    zones,
)
from sinks.duckdb_store import Store
from toogreen.kafka.producer import RecordProducer
from toogreen.settings import Settings

ROUTERS = (health, me, dashboard, zones, nodes, workloads, receipts, billing, sustainability, decisions, admin,
           dead_letters)  # fmt: skip


def create_app(settings: Settings, store: Store, producer: RecordProducer | None) -> FastAPI:
    app = FastAPI(
        title="Too Green To Go",
        version="0.1.0",
        description="Routes AI workloads to the GPUs where electricity is cleanest and cheapest.",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.producer = producer
    app.state.signing_key = None
    app.state.principals = {}  # token hash -> Principal, filled as tokens are first used
    app.state.pending = set()  # surplus events still publishing (asyncio tasks)
    # the dashboard's reads, encoded once per committed write (None: computed per request, the old path)
    app.state.read_models = ReadModels(store.read_model, settings.read_models) if settings.read_models.enabled else None
    app.add_middleware(BodySizeLimit, max_bytes=settings.api.max_body_bytes)
    if settings.api.answer_cache_max_age_s > 0:
        app.add_middleware(AnswerCache, read_model=store.read_model, max_age_s=settings.api.answer_cache_max_age_s)
    if app.state.read_models is not None:  # outermost: a kept answer skips the rest of the stack
        app.add_middleware(ReadModelFastPath, state=app.state, models=app.state.read_models)
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    mount_dashboard(app)  # the dashboard at /, its files under /css/, /js/ and /vendor/
    return app
