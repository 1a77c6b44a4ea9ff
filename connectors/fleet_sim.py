"""A simulated GPU fleet and its node agents (a simulator: every record says ``simulated``).

Twenty nodes (7 H100, 8 A100, 4 RTX 4090, 1 RTX 3080) of data centres, energy recyclers and gamers, each in a
zone with grid data. The fleet obeys ``node.commands`` as a real node agent would (start, checkpoint, stop,
resume), reports ``node.telemetry`` that reflects what runs on each GPU (power, energy counter, memory,
utilisation) and the ``workload.events`` of what it runs (started, progress, checkpointed, resumed, completed).
Simulated time for workloads runs ``hours_per_second`` faster than the wall clock.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from solders.keypair import Keypair

from toogreen.domain.zones import ZONES

GPU_SPECS: dict[str, tuple[int, float, float]] = {  # model -> (VRAM MiB, idle W, max W)
    "H100": (81559, 118.0, 700.0),  # idle and max as measured in the shared NVML trace
    "A100": (81920, 55.0, 400.0),
    "RTX 4090": (24564, 25.0, 450.0),
    "RTX 3080": (10240, 20.0, 320.0),
}
MIG_SLICES = {"H100": 7, "A100": 7}

# (node_id, provider, node_type, gpu_model, zone, pue, declared source, declared gCO2/kWh)
FLEET: tuple[tuple[str, str, str, str, str, float, str | None, float | None], ...] = (
    ("dc-fr-h100-1", "Nordique Cloud", "datacenter", "H100", "FR", 1.15, None, None),
    ("dc-fr-h100-2", "Nordique Cloud", "datacenter", "H100", "FR", 1.15, None, None),
    ("dc-de-h100-1", "Rhein Compute", "datacenter", "H100", "DE", 1.25, None, None),
    ("dc-nl-h100-1", "Polder DC", "datacenter", "H100", "NL", 1.20, None, None),
    ("dc-us-cal-h100-1", "Sierra GPU", "datacenter", "H100", "US-CAL-CISO", 1.30, None, None),
    ("dc-us-tex-h100-1", "Lone Star AI", "datacenter", "H100", "US-TEX-ERCO", 1.35, None, None),
    ("rc-es-h100-1", "Sol Heat Recovery", "recycler", "H100", "ES", 1.05, "waste heat to district heating", 25.0),
    ("dc-es-a100-1", "Iberia Compute", "datacenter", "A100", "ES", 1.20, None, None),
    ("dc-pt-a100-1", "Atlantico DC", "datacenter", "A100", "PT", 1.18, None, None),
    ("dc-it-a100-1", "Milano GPU", "datacenter", "A100", "IT", 1.30, None, None),
    ("dc-gb-a100-1", "Albion Cloud", "datacenter", "A100", "GB", 1.22, None, None),
    ("dc-be-a100-1", "Benelux Compute", "datacenter", "A100", "BE", 1.20, None, None),
    ("dc-us-ny-a100-1", "Hudson AI", "datacenter", "A100", "US-NY-NYIS", 1.28, None, None),
    ("rc-de-a100-1", "Kraftwerk Recycling", "recycler", "A100", "DE", 1.05, "curtailed wind", 15.0),
    ("rc-gb-a100-1", "Highland Heat", "recycler", "A100", "GB", 1.04, "stranded wind", 12.0),
    ("gm-fr-4090-1", "camille", "gamer", "RTX 4090", "FR", 1.0, None, None),
    ("gm-pt-4090-1", "joao", "gamer", "RTX 4090", "PT", 1.0, None, None),
    ("gm-us-cal-4090-1", "riley", "gamer", "RTX 4090", "US-CAL-CISO", 1.0, None, None),
    ("gm-de-4090-1", "jonas", "gamer", "RTX 4090", "DE", 1.0, None, None),
    ("gm-es-3080-1", "lucia", "gamer", "RTX 3080", "ES", 1.0, None, None),
)


def demo_wallet(node_id: str) -> str:
    """A real Solana address (base58 public key) derived from the node id, for the simulated gamers."""
    return str(Keypair.from_seed(hashlib.sha256(node_id.encode()).digest()).pubkey())


@dataclass
class SimWorkload:
    workload_id: str
    vram_mb: int
    expected_hours: float
    progress_pct: float = 0.0
    resumed_from: str | None = None


@dataclass
class SimNode:
    node_id: str
    provider: str
    node_type: str
    gpu_model: str
    zone: str
    pue: float
    declared_source: str | None
    declared_carbon: float | None
    energy_j: float = 0.0
    running: dict[str, SimWorkload] = field(default_factory=dict)

    @property
    def spec(self) -> tuple[int, float, float]:
        return GPU_SPECS[self.gpu_model]


SEEN_COMMANDS_KEPT = 1024


class SimulatedFleet:
    """State of every simulated node; :meth:`apply_command` and :meth:`tick` return the records to send."""

    def __init__(self, seed: int, hours_per_second: float, rows: tuple = FLEET) -> None:
        self._rng = random.Random(seed)
        self.hours_per_second = hours_per_second
        self.nodes = {row[0]: SimNode(*row) for row in rows if row[4] in ZONES}
        self.checkpoints: dict[str, SimWorkload] = {}  # shared checkpoint storage, by location
        self.refuse_starts_on: set[str] = set()  # for tests: nodes whose next start or resume fails
        # the ids of the last commands carried out: one sent again (the owner's outbox after a failover sends a
        # command again with its id) is a no-op, as on a real node (connectors/node_agent/supervisor.py)
        self._seen: deque[str] = deque(maxlen=SEEN_COMMANDS_KEPT)
        self._seq = 0

    def registrations(self, ts_ms: int) -> list[dict[str, Any]]:
        out = []
        for n in self.nodes.values():
            zone = ZONES[n.zone]
            vram, _idle, max_w = n.spec
            out.append(
                {
                    "node_id": n.node_id,
                    "ts_ms": ts_ms,
                    "provider": n.provider,
                    "node_type": n.node_type,
                    "gpu_model": n.gpu_model,
                    "vram_mb": vram,
                    "zone": n.zone,
                    "lat": round(zone.lat + self._rng.uniform(-1, 1), 3),
                    "lng": round(zone.lng + self._rng.uniform(-1, 1), 3),
                    "pue": n.pue,
                    "mig_capable": n.gpu_model in MIG_SLICES,
                    "wallet": demo_wallet(n.node_id) if n.node_type == "gamer" else None,
                    "billing_account": f"acct_{n.provider.lower().replace(' ', '_')}"
                    if n.node_type != "gamer"
                    else None,
                    "declared_energy_source": n.declared_source,
                    "declared_carbon_gco2_per_kwh": n.declared_carbon,
                    "max_power_w": max_w,
                }
            )
        return out

    def _event(self, node: SimNode, wid: str, kind: str, ts_ms: int, **extra: Any) -> dict[str, Any]:
        self._seq += 1
        return {
            "event_id": f"sim:{node.node_id}:{wid}:{kind}:{ts_ms}:{self._seq}",
            "workload_id": wid,
            "ts_ms": ts_ms,
            "type": kind,
            "node_id": node.node_id,
            "progress_pct": extra.get("progress_pct"),
            "checkpoint_uri": extra.get("checkpoint_uri"),
            "decision_id": None,
            "reason": extra.get("reason"),
            "request": None,
        }

    def apply_command(self, cmd: dict[str, Any], ts_ms: int) -> list[dict[str, Any]]:
        """Obey one ``node.commands`` record; returns the ``workload.events`` records it causes."""
        node = self.nodes.get(cmd["node_id"])
        wid, action = cmd["workload_id"], cmd["action"]
        if node is None:
            return []
        command_id = cmd.get("command_id")
        if command_id is not None:
            if command_id in self._seen:
                return []  # carried out already (the workload may have ended since: it is not started again)
            self._seen.append(command_id)
        vram = node.spec[0]
        if action in ("start", "resume") and node.node_id in self.refuse_starts_on:
            self.refuse_starts_on.discard(node.node_id)
            return [self._event(node, wid, "failed", ts_ms, reason=f"{node.node_id} could not start the container")]
        if action in ("start", "resume") and wid in node.running:
            return []  # a command read again after the agent restarted: it runs already
        if action in ("start", "resume"):
            used = sum(w.vram_mb for w in node.running.values())
            if used + cmd["vram_mb"] > vram:
                return [self._event(node, wid, "failed", ts_ms, reason=f"not enough VRAM on {node.node_id}")]
            saved = self.checkpoints.get(cmd.get("checkpoint_uri") or "") if action == "resume" else None
            wl = (
                SimWorkload(wid, saved.vram_mb, saved.expected_hours, saved.progress_pct)
                if saved
                else SimWorkload(wid, cmd["vram_mb"], max(cmd["expected_hours"], 1e-3))
            )
            wl.resumed_from = cmd.get("checkpoint_uri") if action == "resume" else None
            node.running[wid] = wl
            kind = "resumed" if action == "resume" else "started"
            return [self._event(node, wid, kind, ts_ms, checkpoint_uri=wl.resumed_from)]
        running = node.running.get(wid)
        if running is None:
            return []
        wl = running
        if action == "checkpoint":
            uri = cmd.get("checkpoint_uri") or f"sim://{node.node_id}/{wid}/{ts_ms}.ckpt"
            self.checkpoints[uri] = SimWorkload(wid, wl.vram_mb, wl.expected_hours, wl.progress_pct)
            return [self._event(node, wid, "checkpointed", ts_ms, checkpoint_uri=uri, progress_pct=wl.progress_pct)]
        if action == "stop":
            node.running.pop(wid, None)
        return []

    def to_state(self) -> dict[str, Any]:
        """What survives a restart of the agent process (the GPUs keep running): the work on each node, the
        energy counters, the checkpoints."""
        return {
            "seq": self._seq,
            "nodes": {
                n.node_id: {"energy_j": n.energy_j, "running": [asdict(w) for w in n.running.values()]}
                for n in self.nodes.values()
            },
            "checkpoints": {uri: asdict(w) for uri, w in self.checkpoints.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._seq = int(state.get("seq", 0))
        for node_id, saved in state.get("nodes", {}).items():
            node = self.nodes.get(node_id)
            if node is not None:
                node.energy_j = float(saved["energy_j"])
                node.running = {w["workload_id"]: SimWorkload(**w) for w in saved["running"]}
        self.checkpoints = {uri: SimWorkload(**w) for uri, w in state.get("checkpoints", {}).items()}

    def tick(self, ts_ms: int, dt_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Advance ``dt_s`` seconds: returns (telemetry records, workload events)."""
        telemetry, events = [], []
        for node in self.nodes.values():
            vram, idle_w, max_w = node.spec
            finished = []
            for wl in node.running.values():
                wl.progress_pct = min(100.0, wl.progress_pct + 100.0 * dt_s * self.hours_per_second / wl.expected_hours)
                if wl.progress_pct >= 100.0:
                    finished.append(wl)
                else:
                    events.append(
                        self._event(node, wl.workload_id, "progress", ts_ms, progress_pct=round(wl.progress_pct, 2))
                    )
            for wl in finished:
                node.running.pop(wl.workload_id)
                events.append(self._event(node, wl.workload_id, "completed", ts_ms, progress_pct=100.0))
            busy = bool(node.running)
            util = min(100.0, 85.0 + self._rng.uniform(0, 15)) if busy else self._rng.uniform(0, 3)
            power = idle_w + (max_w - idle_w) * util / 100.0
            node.energy_j += power * dt_s
            mem_used = 600 + sum(w.vram_mb for w in node.running.values())
            telemetry.append(
                {
                    "node_id": node.node_id,
                    "ts_ms": ts_ms,
                    "sm_util_pct": round(util, 2),
                    "mem_used_mb": min(mem_used, vram),
                    "mem_total_mb": vram,
                    "power_w": round(power, 2),
                    "energy_j": round(node.energy_j, 3),
                    "temperature_c": round(32 + util * 0.45, 1),
                    "sm_clock_mhz": 1980 if busy else 345,
                    "mem_clock_mhz": 2619 if node.gpu_model == "H100" else 1593,
                    "mig_enabled": False,
                    "mig_slices_total": MIG_SLICES.get(node.gpu_model, 0),
                    "mig_slices_free": 0 if busy else MIG_SLICES.get(node.gpu_model, 0),
                    "health": "healthy",
                    "source": "simulated",
                }
            )
        return telemetry, events
