"""The fleet as routing reads it: every node's view, also held column by column in numpy arrays, so one decision
scores every node with a few array operations instead of a Python loop per node.

The router's worker keeps one :class:`Fleet` and updates only the nodes that changed (``upsert`` / ``remove``);
one-off callers build one with :meth:`Fleet.of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from toogreen.domain.kinds import NodeHealth, NodeKind
from toogreen.domain.views import NodeView

NODE_TYPES = (NodeKind.DATACENTER, NodeKind.RECYCLER, NodeKind.GAMER)
OTHER_TYPE = len(NODE_TYPES)
_FLOAT_COLUMNS = ("pue", "vram_mb", "vram_free_mb", "util_pct", "declared", "max_power_w")
_INT_COLUMNS = ("node_type", "gpu_model", "zone", "last_seen_ms", "whole_tenants", "mig_slices_used", "mig_layout")
_BOOL_COLUMNS = ("unhealthy", "mig_capable", "drained")


class Fleet:
    """Node views by id, and the same nodes as columns (row ``rows[node_id]`` in every column)."""

    def __init__(self, capacity: int = 64) -> None:
        self.views: list[NodeView] = []
        self.rows: dict[str, int] = {}
        self.gpu_models: dict[str, int] = {}
        self.zones: dict[str, int] = {}
        # (GPU model, MIG slices held): nodes with the same layout can take the same slice
        self.mig_layouts: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}
        self.cols: dict[str, np.ndarray] = {}
        for name in _FLOAT_COLUMNS:
            self.cols[name] = np.zeros(capacity, dtype=np.float64)
        for name in _INT_COLUMNS:
            self.cols[name] = np.zeros(capacity, dtype=np.int64)
        for name in _BOOL_COLUMNS:
            self.cols[name] = np.zeros(capacity, dtype=bool)
        self._id_rank: np.ndarray | None = None

    @classmethod
    def of(cls, nodes: Iterable[NodeView]) -> Fleet:
        if isinstance(nodes, Fleet):
            return nodes
        nodes = list(nodes)
        fleet = cls(max(64, len(nodes)))
        for view in nodes:
            fleet.upsert(view)
        return fleet

    def __len__(self) -> int:
        return len(self.views)

    def __iter__(self) -> Iterator[NodeView]:
        return iter(self.views)

    def get(self, node_id: str) -> NodeView | None:
        row = self.rows.get(node_id)
        return None if row is None else self.views[row]

    def column(self, name: str) -> np.ndarray:
        return self.cols[name][: len(self.views)]

    def code(self, registry: dict[Any, int], name: Any) -> int:
        """``name``'s code in ``registry`` (GPU models, zones, MIG layouts), the next free one when it is new."""
        return registry.setdefault(name, len(registry))

    def upsert(self, view: NodeView) -> None:
        row = self.rows.get(view.node_id)
        if row is None:
            row = len(self.views)
            if row == len(self.cols["pue"]):
                for name, col in self.cols.items():
                    self.cols[name] = np.concatenate([col, np.zeros_like(col)])
            self.rows[view.node_id] = row
            self.views.append(view)
            self._id_rank = None
        else:
            self.views[row] = view
        c = self.cols
        c["node_type"][row] = NODE_TYPES.index(view.node_type) if view.node_type in NODE_TYPES else OTHER_TYPE
        c["gpu_model"][row] = self.code(self.gpu_models, view.gpu_model)
        c["zone"][row] = self.code(self.zones, view.zone)
        c["pue"][row] = view.pue
        c["vram_mb"][row] = view.vram_mb
        c["vram_free_mb"][row] = view.vram_free_mb
        c["util_pct"][row] = view.util_pct
        c["declared"][row] = np.nan if view.declared_carbon_gco2_per_kwh is None else view.declared_carbon_gco2_per_kwh
        c["max_power_w"][row] = view.max_power_w
        c["last_seen_ms"][row] = view.last_seen_ms
        c["whole_tenants"][row] = view.whole_tenants
        c["mig_slices_used"][row] = sum(count for _profile, count in view.mig_used)
        c["mig_layout"][row] = self.code(self.mig_layouts, (view.gpu_model, view.mig_used))
        c["unhealthy"][row] = view.health == NodeHealth.UNHEALTHY
        c["mig_capable"][row] = view.mig_capable
        c["drained"][row] = view.drained

    def remove(self, node_id: str) -> None:
        row = self.rows.pop(node_id, None)
        if row is None:
            return
        last = len(self.views) - 1
        if row != last:  # the last row takes the freed one
            moved = self.views[last]
            self.views[row] = moved
            self.rows[moved.node_id] = row
            for col in self.cols.values():
                col[row] = col[last]
        self.views.pop()
        self._id_rank = None

    def id_rank(self) -> np.ndarray:
        """Each row's position in node-id order: the last tie-break of every ranking."""
        if self._id_rank is None:
            order = sorted(range(len(self.views)), key=lambda r: self.views[r].node_id)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            self._id_rank = rank
        return self._id_rank

    def max_vram_mb(self) -> float:
        return float(self.column("vram_mb").max()) if self.views else 0.0
