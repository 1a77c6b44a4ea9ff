-- The DuckDB tables analysts query. Every table has a natural primary key so a replay of the log is a no-op.
-- grid_readings and zone_windows are derived from their topics' Avro schemas (sinks/columns.py).
CREATE TABLE IF NOT EXISTS nodes (
    node_id VARCHAR PRIMARY KEY,
    provider VARCHAR, node_type VARCHAR, gpu_model VARCHAR, vram_mb BIGINT, zone VARCHAR,
    lat DOUBLE, lng DOUBLE, pue DOUBLE, mig_capable BOOLEAN, wallet VARCHAR, billing_account VARCHAR,
    declared_energy_source VARCHAR, declared_carbon_gco2_per_kwh DOUBLE, max_power_w DOUBLE, registered_ms BIGINT,
    last_seen_ms BIGINT, sm_util_pct DOUBLE, mem_used_mb BIGINT, mem_total_mb BIGINT, power_w DOUBLE,
    energy_j DOUBLE, temperature_c DOUBLE, health VARCHAR, mig_slices_free INTEGER, telemetry_source VARCHAR
);
CREATE TABLE IF NOT EXISTS workloads (
    workload_id VARCHAR PRIMARY KEY,
    name VARCHAR, workload_type VARCHAR, image VARCHAR, command VARCHAR, vram_mb BIGINT, expected_hours DOUBLE,
    priority VARCHAR, green_only BOOLEAN, max_carbon_gco2_kwh DOUBLE, budget_eur DOUBLE, deadline_ms BIGINT,
    checkpoint_gb DOUBLE, submitter VARCHAR,
    status VARCHAR NOT NULL, node_id VARCHAR, progress_pct DOUBLE, last_decision_id VARCHAR, reason VARCHAR,
    submitted_ms BIGINT, updated_ms BIGINT, moves INTEGER DEFAULT 0
);
CREATE TABLE IF NOT EXISTS workload_events (
    event_id VARCHAR PRIMARY KEY,
    workload_id VARCHAR NOT NULL, ts_ms BIGINT, type VARCHAR, node_id VARCHAR, progress_pct DOUBLE,
    checkpoint_uri VARCHAR, decision_id VARCHAR, reason VARCHAR, applied BOOLEAN,
    log_offset BIGINT  -- position in its workload.events partition: a workload's events in log order
);
CREATE TABLE IF NOT EXISTS routing_decisions (
    decision_id VARCHAR PRIMARY KEY,
    workload_id VARCHAR NOT NULL, ts_ms BIGINT, type VARCHAR, chosen_node_id VARCHAR, chosen_zone VARCHAR,
    tier INTEGER, score DOUBLE, carbon_part DOUBLE, price_part DOUBLE, utilisation_part DOUBLE, reason VARCHAR,
    alternatives JSON, grid_windows JSON, mig_profile VARCHAR, from_node_id VARCHAR, from_zone VARCHAR,
    score_gain DOUBLE, saved_gco2 DOUBLE, move_cost_s DOUBLE
);
CREATE TABLE IF NOT EXISTS grid_forecasts (
    zone VARCHAR NOT NULL, issued_ms BIGINT NOT NULL, step_ms BIGINT, model VARCHAR, source VARCHAR,
    band_coverage DOUBLE, points JSON,
    PRIMARY KEY (zone, issued_ms)
);
CREATE TABLE IF NOT EXISTS node_commands (
    command_id VARCHAR PRIMARY KEY,
    node_id VARCHAR, ts_ms BIGINT, action VARCHAR, workload_id VARCHAR, checkpoint_uri VARCHAR, vram_mb BIGINT,
    expected_hours DOUBLE, mig_profile VARCHAR, decision_id VARCHAR
);
CREATE TABLE IF NOT EXISTS carbon_receipts (
    receipt_id VARCHAR PRIMARY KEY,
    workload_id VARCHAR NOT NULL, issued_ms BIGINT, kwh DOUBLE, gco2_actual DOUBLE, gco2_baseline DOUBLE,
    gco2_saved DOUBLE, gco2_market_based DOUBLE, method VARCHAR, intervals JSON, data_sources JSON,
    signature VARCHAR, public_key VARCHAR
);
CREATE TABLE IF NOT EXISTS billing_records (
    billing_id VARCHAR PRIMARY KEY,
    workload_id VARCHAR NOT NULL, ts_ms BIGINT, gpu_hours DOUBLE, kwh DOUBLE, charge DOUBLE, fee DOUBLE,
    payout DOUBLE, currency VARCHAR, node_id VARCHAR, metering_ids JSON
);
CREATE TABLE IF NOT EXISTS payouts (
    payout_id VARCHAR PRIMARY KEY,
    workload_id VARCHAR NOT NULL, node_id VARCHAR, rail VARCHAR, amount DOUBLE, currency VARCHAR,
    status VARCHAR, reference VARCHAR, ts_ms BIGINT
);
-- Offsets start again in every log lifetime, so the lifetime is part of a dead letter's key.
CREATE TABLE IF NOT EXISTS dead_letters (
    lifetime_id VARCHAR NOT NULL,
    source_topic VARCHAR NOT NULL,
    source_partition INTEGER NOT NULL,
    source_offset BIGINT NOT NULL,
    ts_ms BIGINT, stage VARCHAR, reason VARCHAR, key BLOB, raw BLOB, raw_size_bytes BIGINT, raw_sha256 VARCHAR,
    PRIMARY KEY (lifetime_id, source_topic, source_partition, source_offset)
);
-- API bearer tokens: only the SHA-256 of each token is stored (tokens are 256-bit random, so a plain hash is
-- enough to make a stolen file useless for signing in).
CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 VARCHAR PRIMARY KEY,
    role VARCHAR NOT NULL, subject VARCHAR NOT NULL, created_ms BIGINT NOT NULL, created_by VARCHAR
);
-- Submissions the API accepted, by the submitter's Idempotency-Key: a retry returns the same workload, and the
-- workload answers (status submitted) before the sink has read its event back from the log.
CREATE TABLE IF NOT EXISTS api_submissions (
    workload_id VARCHAR PRIMARY KEY,
    submitter VARCHAR NOT NULL, idempotency_key VARCHAR, ts_ms BIGINT NOT NULL, event JSON NOT NULL,
    published BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (submitter, idempotency_key)
);
-- Files written by an older version gain the columns added since.
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS log_offset BIGINT;
ALTER TABLE carbon_receipts ADD COLUMN IF NOT EXISTS receipt_hash VARCHAR;
ALTER TABLE billing_records ADD COLUMN IF NOT EXISTS stripe_status VARCHAR;
ALTER TABLE billing_records ADD COLUMN IF NOT EXISTS stripe_attempts INTEGER DEFAULT 0;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS wallet VARCHAR;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS lamports BIGINT;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS memo VARCHAR;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS attempts INTEGER DEFAULT 0;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS reason VARCHAR;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS receipt_hash VARCHAR;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS mig_profile VARCHAR;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS from_node_id VARCHAR;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS from_zone VARCHAR;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS score_gain DOUBLE;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS saved_gco2 DOUBLE;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS move_cost_s DOUBLE;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS nodes_considered INTEGER;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS nodes_eligible INTEGER;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS exclusions JSON;
ALTER TABLE routing_decisions ADD COLUMN IF NOT EXISTS deferral JSON;
ALTER TABLE node_commands ADD COLUMN IF NOT EXISTS mig_profile VARCHAR;
ALTER TABLE node_commands ADD COLUMN IF NOT EXISTS decision_id VARCHAR;
-- what node agents measure (docs/node-agent.md): per event, and the result on the workload
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS checkpoint_sha256 VARCHAR;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS checkpoint_bytes BIGINT;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS checkpoint_s DOUBLE;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS store_s DOUBLE;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS transfer_s DOUBLE;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS restore_s DOUBLE;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS downtime_s DOUBLE;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS exit_code INTEGER;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS result_sha256 VARCHAR;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS result_bytes BIGINT;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS result_uri VARCHAR;
ALTER TABLE workloads ADD COLUMN IF NOT EXISTS exit_code INTEGER;
ALTER TABLE workloads ADD COLUMN IF NOT EXISTS result_sha256 VARCHAR;
ALTER TABLE workloads ADD COLUMN IF NOT EXISTS result_bytes BIGINT;
ALTER TABLE workloads ADD COLUMN IF NOT EXISTS result_uri VARCHAR;
-- Log lifetimes (a broker's log from its start; its id is the cluster id): each as the sink first read it.
CREATE TABLE IF NOT EXISTS log_lifetimes (
    lifetime_id VARCHAR PRIMARY KEY,
    first_seen_ms BIGINT NOT NULL,
    workloads_lost INTEGER  -- workloads still active in earlier lifetimes, ended as lost when this one began
);
ALTER TABLE workloads ADD COLUMN IF NOT EXISTS lifetime_id VARCHAR;
ALTER TABLE workload_events ADD COLUMN IF NOT EXISTS lifetime_id VARCHAR;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_size_bytes BIGINT;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_sha256 VARCHAR;
