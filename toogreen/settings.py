"""The one typed settings object: every number of SPEC.md and every address lives here.

Values come from environment variables with the prefix ``TOOGREEN_`` (nested fields use ``__``, for example
``TOOGREEN_SCORING__CARBON_WEIGHT=0.5``). ``KAFKA_BOOTSTRAP`` is accepted too: when a bootstrap address is set,
no embedded broker is started and every part talks to that Kafka.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from toogreen import PROJECT_ROOT


class BrokerSettings(BaseModel):
    """Kafka addresses and the embedded Tansu broker."""

    bootstrap: str | None = Field(
        default=None, description="host:port of a real Kafka; unset means start the embedded broker"
    )
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 9092
    topic_partitions: int = 4
    replication_factor: int = 1


class WorkerSettings(BaseModel):
    """Faust worker tuning (the defaults make the first group join take ~30 s on the embedded broker)."""

    app_id: str = "toogreen"
    rebalance_timeout_s: float = 4.0
    session_timeout_s: float = 4.0
    heartbeat_interval_s: float = 1.0
    table_cleanup_interval_s: float = 30.0
    # grid/telemetry table changes and window records are sent once per key per run of events (streams/coalesce.py)
    # (a run holds its events' acks; a changed node's state is logged at most once a second at the default)
    coalesce_max_events: int = 20_000
    coalesce_max_delay_ms: float = 1000.0
    # the router's runs are shorter: its decisions and commands leave when the run's state is acked (each event a
    # run of one at 0; the runs' ends overlap, so this adds one round trip to the brokers, not a run's length)
    router_coalesce_max_delay_ms: float = 0.0
    # how long a fetch may wait at the broker for records (Faust's own is 1500 ms: see streams/faust_private.py)
    fetch_max_wait_ms: int = 10
    # the router's node views are rebuilt for changed nodes only, and for all of them after a rebalance and this often
    fleet_resync_s: float = 60.0
    # an ended workload is settled when its last node hands over the energy it drew there, or after this long
    settle_wait_s: float = 15.0


class CheckpointSettings(BaseModel):
    """How a run's end waits for its state before its effects leave (streams/checkpoint.py)."""

    # how long a run's effects wait for its state to be acked before they leave anyway (with a warning): a batch the
    # producer keeps retrying while a broker is away must not hold every later run's commands back
    state_wait_s: float = 5.0
    # how many ended runs may wait for their acks before the agent waits too
    max_runs_in_flight: int = 64
    # how long the router's outbox keeps what an event sent (for its redelivery), well past the commit of its offset
    outbox_keep_s: float = 60.0


class WindowSettings(BaseModel):
    """Zone windows, in event time."""

    tumbling_s: int = 300
    hopping_size_s: int = 3600
    hopping_step_s: int = 300
    grace_s: int = 600
    keep_s: int = 6 * 3600


class SurplusSettings(BaseModel):
    """When a zone counts as being in surplus."""

    price_below_eur_per_mwh: float = 10.0
    renewable_sigma: float = 2.0
    min_window_count: int = 6
    curtailment_full_discount_mw: float = 2000.0


class ScoringSettings(BaseModel):
    """Composite score weights and routing thresholds (SPEC §4)."""

    carbon_weight: float = 0.6
    price_weight: float = 0.3
    utilisation_weight: float = 0.1
    green_renewable_pct: float = 50.0
    # a zone at or below this intensity (gCO2eq/kWh) also counts as green for the tiers and green-only work, e.g. a
    # nuclear grid; None: renewable share and surplus alone decide (SPEC §4). See docs/forecast.md for what it does
    green_max_carbon_gco2_per_kwh: float | None = None
    # work that is not green-only takes a non-compliant node (tier 4) no dirtier than the cleanest compliant one
    # (tiers 1-3) before it, keeping it for the green-only work that may run nowhere else; off: strict tiers for all
    # work, as SPEC §4 says (README, "Routing and rerouting": why it is on)
    spare_compliant_nodes: bool = True
    node_stale_after_s: float = 60.0
    zone_stale_after_s: float = 1800.0
    # alternatives a decision record reports: this many best eligible nodes and this many excluded ones (every
    # exclusion is still counted by reason); a fleet this size or smaller is reported whole
    decision_alternatives: int = 20


class MigrationSettings(BaseModel):
    """Rerouting: when a move is worth it, and what one costs (measured on a real H100)."""

    min_gain: float = 0.25
    # a move only to the GPU model it runs on. Off by default: placement takes a workload's expected hours to hold on
    # any GPU it fits, so a move may too; on, a GB H100's work could never move to a free, cleaner A100 in FR
    keep_gpu_model: bool = False
    min_dwell_s: float = 120.0
    max_moves: int = 5
    checkpoint_bytes_per_param: float = 12.0
    vram_bytes_per_param: float = 16.0
    save_s_per_gb: float = 1.86
    restore_s_per_gb: float = 0.78
    first_step_s: float = 0.16
    checkpoint_power_w: float = 145.0
    link_gbps: float = 10.0
    mig_max_util_pct: float = 70.0
    queue_retry_s: float = 5.0
    queue_retry_batch: int = 50
    rescore_min_interval_s: float = 10.0


class PricingSettings(BaseModel):
    """One price table and its dynamic factors (SPEC §5)."""

    currency: str = "EUR"
    base_eur_per_gpu_hour: dict[str, float] = Field(
        default_factory=lambda: {
            "H100": 2.40,
            "H200": 3.20,
            "A100": 1.50,
            "L40S": 1.10,
            "A10": 0.60,
            "RTX 4090": 0.40,
            "RTX 3090": 0.30,
            "RTX 3080": 0.25,
        }
    )
    default_eur_per_gpu_hour: float = 1.00
    green_premium_min: float = 0.10
    green_premium_max: float = 0.25
    surplus_discount_max: float = 0.40
    demand_multiplier_max: float = 2.5
    demand_ratio_at_max: float = 3.0
    platform_fee_fraction: float = 0.15


class StorageSettings(BaseModel):
    """The DuckDB file (one writing process) and the snapshot analysts open."""

    duckdb_path: Path = PROJECT_ROOT / "var" / "toogreen.duckdb"
    snapshot_path: Path = PROJECT_ROOT / "var" / "toogreen-snapshot.duckdb"
    snapshot_interval_s: float = 10.0
    sink_batch_max: int = 5000
    sink_poll_timeout_s: float = 0.5
    sink_group_id: str = "toogreen-duckdb-sink"


class ApiSettings(BaseModel):
    """The FastAPI server."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 64 * 1024
    admin_token: str = Field(default="demo-admin-token", description="Bearer token of the admin role")
    surplus_event_step_s: float = 30.0
    # a GET is answered from the last answer until a write commits or this much time passes (0 = off)
    answer_cache_max_age_s: float = 1.0
    # uvicorn's event loop and HTTP parser: "auto" is uvloop and httptools (installed); "asyncio" and "h11" are
    # what the API ran on before them (the bench measures both)
    uvicorn_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    uvicorn_http: Literal["auto", "h11", "httptools"] = "auto"


def _ipcc_2014_lifecycle() -> dict[str, float]:
    return {
        "Biomass": 18, "Fossil Gas": 469, "Fossil Hard coal": 1001, "Fossil Brown coal/Lignite": 1001,
        "Fossil Oil": 840, "Geothermal": 45, "Hydro Run-of-river and poundage": 4, "Hydro Water Reservoir": 4,
        "Nuclear": 16, "Solar": 46, "Wind Onshore": 12, "Wind Offshore": 12, "Other": 770, "Other renewable": 22,
        "Waste": 0,
    }  # fmt: skip


def _import_factors_2020() -> dict[str, float]:
    return {
        "AT": 133, "BE": 153, "CH": 12, "CZ": 545, "DE": 379, "DK": 154, "ES": 220, "FR": 39, "GB": 233, "IE": 348,
        "IT": 339, "LU": 139, "NL": 452, "NO": 11, "PL": 791, "SE": 12,
    }  # fmt: skip


class GridSourceSettings(BaseModel):
    """Real grid sources: emission factors for fuel mixes, ENTSO-E and Electricity Maps endpoints."""

    lifecycle_factors_gco2_per_kwh: dict[str, float] = Field(default_factory=_ipcc_2014_lifecycle)
    import_factors_gco2_per_kwh: dict[str, float] = Field(default_factory=_import_factors_2020)
    renewable_fuels: list[str] = Field(
        default_factory=lambda: [
            "Biomass", "Geothermal", "Hydro Run-of-river and poundage", "Hydro Water Reservoir", "Solar",
            "Wind Onshore", "Wind Offshore", "Other renewable",
        ]
    )  # fmt: skip
    entsoe_api_base: str = "https://web-api.tp.entsoe.eu/api"
    entsoe_token: str | None = None
    electricitymaps_api_base: str = "https://api.electricitymap.org/v3"
    electricitymaps_token: str | None = None
    cache_ttl_s: float = 300.0
    http_timeout_s: float = 15.0
    max_retries: int = 5


class DemoSettings(BaseModel):
    """The demo's simulated sources (all labelled synthetic / simulated)."""

    seed: int = 7
    grid_interval_s: float = 2.0
    grid_minutes_per_tick: float = 5.0
    telemetry_interval_s: float = 2.0
    workload_interval_s: float = 6.0
    workload_hours_per_second: float = 1 / 60


class SettlementSettings(BaseModel):
    """Carbon receipts, billing, Stripe metering and Solana payouts (SPEC §6, §8)."""

    signing_key_path: Path = PROJECT_ROOT / "var" / "keys" / "receipt-signing-ed25519.pem"
    baseline_gco2_per_kwh: float = 300.0
    baseline_name: str = "fixed reference intensity"
    # while a workload runs, a billing record (a Stripe meter event) per metering interval of this length (0: none,
    # only the final one at its end)
    metering_interval_s: float = Field(default=3600.0, ge=0)
    # how far back a node's partition keeps the node's samples, so that a workload whose share reached it late
    # (the owner's word travels through its own log) still gets what it drew since it started there (memory: one
    # small record per node and sample, about 60 x 60 B per node at 1 sample/s)
    accrual_lookback_s: float = Field(default=60.0, ge=0)
    stripe_api_key: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_meter_event_name: str = "gpu_seconds"
    stripe_default_customer: str | None = None
    stripe_customers: dict[str, str] = Field(default_factory=dict, description="submitter -> Stripe customer id")
    solana_rpc_url: str | None = None
    solana_payer_key_path: Path = PROJECT_ROOT / "var" / "keys" / "solana-payer.json"
    eur_per_sol: float = 150.0
    max_payout_attempts: int = 5
    solana_rent_exempt_lamports: int = Field(
        default=890_880,
        ge=0,
        description="Rent::minimum_balance(0) on mainnet: a new wallet is paid once owed that",
    )


class SupervisionSettings(BaseModel):
    """Faults: how the demo restarts what died, how fast everything stops, how log lifetimes are watched."""

    stop_grace_s: float = Field(
        default=3.0, description="A process told to stop exits by itself at the latest this late"
    )
    demo_stop_timeout_s: float = Field(
        default=3.5, description="The demo kills what has not stopped this long after asking"
    )
    restart_backoff_min_s: float = 0.5
    restart_backoff_max_s: float = 15.0
    restart_reset_after_s: float = Field(
        default=30.0, description="Up this long, a child's next restart is quick again"
    )
    lifetime_check_s: float = Field(
        default=2.0, description="How often the worker and the sink compare the log lifetime"
    )
    sink_max_failures: int = Field(
        default=5, description="The sink thread restarts this often in a row, then its process dies"
    )
    fleet_state_path: Path | None = Field(
        default=None, description="Where the simulated fleet keeps what runs on its GPUs, so its agent can be restarted"
    )


class HealthSettings(BaseModel):
    """What ``/healthz`` counts as degraded (503)."""

    probe_interval_s: float = 2.0
    probe_timeout_s: float = 1.5
    worker_stall_s: float = Field(
        default=10.0, description="Records waiting and no offset committed this long: no worker"
    )
    sink_stall_s: float = Field(
        default=10.0, description="Records waiting and no sink batch this long: the sink is stuck"
    )
    max_lag_records: int = 50_000


class KafkaClusterSettings(BaseModel):
    """Apache Kafka from Maven Central on 127.0.0.1 in KRaft mode (``toogreen kafka up``, scripts/install-kafka.sh)."""

    version: str = "3.9.2"
    cache_dir: Path = Path.home() / ".cache" / "toogreen"
    run_dir: Path = PROJECT_ROOT / "var" / "kafka"
    brokers: int = 1
    host: str = "127.0.0.1"
    # 0: free ports; else broker i (from 0) listens on base_port + 2i and its controller on base_port + 2i + 1
    base_port: int = 0
    # combined: every broker is a voter of the controller quorum; separate: controller-only processes beside them
    quorum: Literal["combined", "separate"] = "combined"
    separate_controllers: int = 1
    heap_mb: int = 512
    # how long the controller waits for a broker's heartbeat before it fences the broker and moves its leaderships
    broker_session_timeout_ms: int = 6000
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 20.0


class NodeAgentSettings(BaseModel):
    """The node agent a GPU provider runs (``toogreen node-agent``): its intervals, timeouts and directories."""

    workdir: Path = PROJECT_ROOT / "var" / "node-agent"
    checkpoint_store: str = Field(
        default=(PROJECT_ROOT / "var" / "checkpoints").as_uri(),
        description="where checkpoints and results are kept: a file:// URL (a directory) or a plain path",
    )
    telemetry_interval_s: float = 2.0
    registry_refresh_s: float = 60.0
    checkpoint_interval_s: float = 300.0  # SIGUSR1 this often: the last periodic checkpoint bounds what a loss costs
    checkpoint_timeout_s: float = 120.0  # a checkpoint not written within this after SIGUSR1 is reported missing
    stop_timeout_s: float = 120.0  # after SIGTERM, a workload gets this long to checkpoint and exit before SIGKILL
    restore_timeout_s: float = 120.0  # ``resumed`` waits at most this long for the workload's first progress
    # no contract signal before the workload's first progress report or this long after its start (a process
    # signalled before it installed its handlers would die of the signal)
    signal_grace_s: float = 30.0
    progress_interval_s: float = 5.0
    command_poll_s: float = 0.2
    # ``toogreen demo``: a node agent per zone beside the simulated fleet (replayed H100 telemetry, real processes),
    # and the demo's workloads carry the reference workload padded to this per step
    demo_zones: list[str] = Field(default_factory=lambda: ["FR", "DE", "ES"])
    demo_reference_step_ms: float = 50.0


class DeferralSettings(BaseModel):
    """Waiting for a cleaner window a forecast shows (``toogreen.domain.deferral``)."""

    enabled: bool = False
    # a workload waits only when its slack (deadline - now - expected duration) is at least this
    min_slack_h: float = 1.0
    # slack kept in reserve: a deferral ends this long (plus this share of the duration) before the latest start
    deadline_buffer_h: float = 1.0
    deadline_buffer_fraction: float = 0.25
    # the expected saving must beat min_saving + uncertainty_weight x the forecast band's half-width (gCO2eq/kWh)
    min_saving_gco2_per_kwh: float = 5.0
    min_saving_pct: float = 5.0
    uncertainty_weight: float = 0.5
    # a wait is revisited as forecasts and capacity change, but never past the window it chose, nor this long in all
    max_wait_h: float = 24.0
    # green-only work may run on few nodes: a wait risks its deadline more, so by default it is placed when it can be
    defer_green_only: bool = False


class ForecastSettings(BaseModel):
    """Day-ahead intensity forecasts per zone: fitted on the zone's own history, or Electricity Maps' own."""

    horizon_h: int = 36  # day-ahead and then some: a deadline may lie a day and a half out
    step_minutes: int = 60
    history_days: int = 14
    seasonal_period_h: int = 24
    issue_interval_h: float = 6.0
    band_coverage: float = 0.8  # the uncertainty band is this central prediction interval
    # Electricity Maps' forecast has no band: it gets one this wide (± % of the mean), growing to twice at the horizon
    vendor_band_pct: float = 10.0
    deferral: DeferralSettings = DeferralSettings()


class ReadModelSettings(BaseModel):
    """The API's read models of the dashboard's reads (``api/read_models.py``): encoded once per committed write,
    served as bytes."""

    enabled: bool = True  # false: the dashboard's reads are computed per request (the old path, for the bench)
    # answers that also depend on the clock (a zone's staleness, a node's telemetry age) are rebuilt in the
    # background once this old, and served meanwhile: they drift by at most this (plus one rebuild)
    max_age_s: float = 1.0
    idle_s: float = 60.0  # an answer no one read for this long is dropped instead of rebuilt on each write
    # every kept answer is rebuilt on each write: these bound that work (the least recently read goes first)
    max_per_caller: int = 16
    max_entries: int = 512


class LostNodeSettings(BaseModel):
    """When the placement owner presumes a silent node lost and re-queues what ran there."""

    node_lost_after_s: float = 30.0  # no telemetry for this long: the node is presumed lost
    check_interval_s: float = 2.0  # how often the placement owner looks for silent nodes
    # a sample applied this much later than it was taken: its partition was replaying a backlog (a rebalance), so
    # the node's silence since is not known, and it is judged by when the sample was applied
    replay_lag_s: float = 10.0


class Settings(BaseSettings):
    """Everything configurable, in one place."""

    model_config = SettingsConfigDict(env_prefix="TOOGREEN_", env_nested_delimiter="__", extra="ignore")

    broker: BrokerSettings = BrokerSettings()
    worker: WorkerSettings = WorkerSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    windows: WindowSettings = WindowSettings()
    surplus: SurplusSettings = SurplusSettings()
    scoring: ScoringSettings = ScoringSettings()
    pricing: PricingSettings = PricingSettings()
    migration: MigrationSettings = MigrationSettings()
    storage: StorageSettings = StorageSettings()
    api: ApiSettings = ApiSettings()
    demo: DemoSettings = DemoSettings()
    grid: GridSourceSettings = GridSourceSettings()
    settlement: SettlementSettings = SettlementSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    health: HealthSettings = HealthSettings()
    kafka: KafkaClusterSettings = KafkaClusterSettings()
    node_agent: NodeAgentSettings = NodeAgentSettings()

    forecast: ForecastSettings = ForecastSettings()
    read_models: ReadModelSettings = ReadModelSettings()
    lost_nodes: LostNodeSettings = LostNodeSettings()
    data_dir: Path = PROJECT_ROOT.parent / "shared" / "data"

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap address every part uses."""
        return self.broker.bootstrap or f"{self.broker.embedded_host}:{self.broker.embedded_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker.bootstrap is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; ``KAFKA_BOOTSTRAP`` is honoured as an alias of the broker bootstrap."""
    settings = Settings()
    plain = os.environ.get("KAFKA_BOOTSTRAP")
    if plain and settings.broker.bootstrap is None:
        settings.broker.bootstrap = plain
    return settings
