"""GPU nodes with their current scores."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.deps import ScopeDep, SettingsDep, StoreDep
from api.fleet import scored_nodes
from api.responses import Node, NodeDetail
from sinks import queries

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])


@router.get("", response_model=list[Node])
def nodes(store: StoreDep, settings: SettingsDep, scope: ScopeDep) -> list[dict]:
    visible = None if scope.everything else {r["node_id"] for r in queries.nodes(store, scope)}
    return scored_nodes(store, settings, visible)


@router.get("/{node_id}", response_model=NodeDetail)
def get_node(store: StoreDep, settings: SettingsDep, scope: ScopeDep, node_id: str) -> dict:
    if not queries.nodes(store, scope, node_id):
        raise HTTPException(404, f"unknown node {node_id!r}")
    return scored_nodes(store, settings, {node_id})[0]
