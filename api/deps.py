"""FastAPI dependencies: the store, the settings, the producer and the signing key of the running app,; the
caller's role and scope are in ``api/security.py``."""

from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, HTTPException, Request

from sinks.duckdb_store import Store
from toogreen.kafka.producer import RecordProducer
from toogreen.settings import Settings
from toogreen.signing import load_or_create_key


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_producer(request: Request) -> RecordProducer:
    """The Kafka producer; 503 when this API runs without one (a read-only API)."""
    producer = request.app.state.producer
    if producer is None:
        raise HTTPException(503, "this API runs without a Kafka producer: it cannot publish")
    return producer


def get_signing_key(request: Request) -> Ed25519PrivateKey:
    state = request.app.state
    if getattr(state, "signing_key", None) is None:
        state.signing_key = load_or_create_key(state.settings.settlement.signing_key_path)
    return state.signing_key


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ProducerDep = Annotated[RecordProducer, Depends(get_producer)]
SigningKeyDep = Annotated[Ed25519PrivateKey, Depends(get_signing_key)]
