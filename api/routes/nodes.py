"""GPU nodes: register one (providers), the list with current scores, one node with its holds."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException

from api.deps import ProducerDep, SettingsDep, StoreDep
from api.fleet import now_ms, scored_nodes
from api.models import NodeRegistration
from api.read_models import read_model
from api.responses import Node, NodeDetail, RegisteredNode, documented
from api.security import NodeReader, Principal, ProviderCaller, Role, issue_token
from sinks import queries
from sinks.rows import registration_row
from toogreen.codec import EncodeError
from toogreen.domain.validation import validate_registration
from toogreen.domain.zones import ZONES
from toogreen.topics import NODE_REGISTRY

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"], responses=documented(400, 401, 403, 404, 409, 413, 422, 503))


@router.get("", response_model=list[Node])
@read_model(list[Node])
def nodes(store: StoreDep, settings: SettingsDep, caller: ProviderCaller) -> list[dict]:
    scope = caller.scope
    visible = None if scope.everything else {r["node_id"] for r in queries.nodes(store, scope)}
    return scored_nodes(store, settings, visible)


@router.get("/{node_id}", response_model=NodeDetail)
def get_node(store: StoreDep, settings: SettingsDep, caller: NodeReader, node_id: str) -> dict:
    if not queries.nodes(store, caller.scope, node_id):
        raise HTTPException(404, f"unknown node {node_id!r}")
    return scored_nodes(store, settings, {node_id})[0]


def _provider_of(caller: Principal) -> tuple[str, str]:
    if caller.role is Role.admin:
        raise HTTPException(403, "an admin registers no nodes: issue the provider a token, and register with it")
    return caller.subject, caller.role.value


@router.post("", status_code=201, response_model=RegisteredNode)
def register_node(body: NodeRegistration, store: StoreDep, producer: ProducerDep, caller: ProviderCaller) -> dict:
    """Publish the node's registration to ``node.registry`` and issue its node agent's token."""
    provider, node_type = _provider_of(caller)
    if body.zone not in ZONES:
        raise HTTPException(422, f"unknown zone {body.zone!r}: known zones are {', '.join(ZONES)}")
    node_id = body.node_id or f"{node_type[:2]}-{body.zone.lower()}-{uuid.uuid4().hex[:8]}"
    existing = queries.nodes(store, node_id=node_id)
    if existing and existing[0]["provider"] != provider:
        raise HTTPException(409, f"node id {node_id!r} is taken: choose another, or leave it out")
    record = {**body.model_dump(), "node_id": node_id, "ts_ms": now_ms(), "provider": provider, "node_type": node_type}
    problems = validate_registration(record)
    if problems:
        raise HTTPException(422, "; ".join(problems))
    try:
        producer.send(NODE_REGISTRY.name, node_id, record)
        producer.flush(timeout_s=10)
    except EncodeError as exc:
        raise HTTPException(422, str(exc)) from exc
    except Exception as exc:
        raise HTTPException(503, f"could not publish the registration: {exc}") from exc
    # The same idempotent upsert the sink makes when it reads the record back: the node answers at once.
    store.write({"nodes:registration": [registration_row(record)]}, [])
    token = issue_token(store, Role.node, node_id, created_by=provider)
    return {"node_id": node_id, "provider": provider, "node_type": node_type, "token": token,
            "href": f"/api/v1/nodes/{node_id}"}  # fmt: skip
