"""Which running workloads a grid or node change affects, so that only those are re-scored."""

from __future__ import annotations

from collections.abc import Mapping

from toogreen.domain.records import RunningEntry
from toogreen.domain.views import ZoneView
from toogreen.settings import MigrationSettings


def workloads_to_rescore(
    zone: ZoneView, running: Mapping[str, RunningEntry], now_ms: int, settings: MigrationSettings
) -> list[str]:
    """Workloads running in ``zone`` (their own grid changed), and those elsewhere for which a node in ``zone``
    could now be at least ``min_gain`` cleaner, or cheaper because the zone is in surplus; each at most once per
    ``rescore_min_interval_s``."""
    floor_ms = settings.rescore_min_interval_s * 1000
    out = []
    for workload_id, r in running.items():
        if now_ms - r.last_rescore_ms < floor_ms:
            continue
        cleaner = zone.carbon_gco2_per_kwh <= r.carbon_gco2_per_kwh * (1 - settings.min_gain)
        if r.zone == zone.zone or cleaner or zone.surplus:
            out.append(workload_id)
    return sorted(out)


def workloads_on_node(node_id: str, running: Mapping[str, RunningEntry]) -> list[str]:
    return sorted(w for w, r in running.items() if r.node_id == node_id)


def workloads_to_rescore_on_capacity(
    freed_node_id: str, running: Mapping[str, RunningEntry], now_ms: int, settings: MigrationSettings
) -> list[str]:
    """A node was freed: every running workload elsewhere may now have a better place (each at most once per
    ``rescore_min_interval_s``)."""
    floor_ms = settings.rescore_min_interval_s * 1000
    return sorted(
        w for w, r in running.items() if r.node_id != freed_node_id and now_ms - r.last_rescore_ms >= floor_ms
    )
