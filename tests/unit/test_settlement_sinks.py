"""Settling from DuckDB: Stripe meter events through the real SDK against a stand-in, Solana payouts executed by
LiteSVM; a replay of the same settlement input changes nothing anywhere."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from connectors.fleet_sim import SimulatedFleet, demo_wallet
from sinks.duckdb_store import Store
from sinks.kafka_sink import rows_from_messages
from sinks.settlement import Settler
from sinks.solana_payouts import LAMPORTS_PER_SOL, LiteSVMGateway, eur_to_lamports
from sinks.stripe_meter import StripeMeterReporter
from tests.builders import messages
from tests.standins import stripe as stripe_standin
from tests.standins.server import serve
from toogreen.domain.accounting import Slot, accrue
from toogreen.domain.receipts import receipt_hash
from toogreen.domain.settlement import settle
from toogreen.settings import Settings
from toogreen.signing import load_or_create_key, sign_receipt
from toogreen.submission import submission_event

T0 = 1_800_000_000_000
GAMER = "gm-fr-4090-1"


def gamer_wallet() -> Pubkey:
    return Pubkey.from_string(demo_wallet(GAMER))


def settlement_batch(tmp_path, node_id=GAMER, hours=2.0, workload_id="w1"):
    fleet = SimulatedFleet(seed=1, hours_per_second=1.0)
    sub = submission_event({"name": "j", "workload_type": "training", "image": "i", "vram_mb": 1000,
                            "expected_hours": hours, "submitter": "acme"}, workload_id, T0)  # fmt: skip
    intervals = accrue([], Slot(node_id, "FR", 1.0, 1.0, 50.0, 0), T0, T0 + int(hours * 3_600_000), 1.6e6 * hours, "c")
    receipt, billing = settle({"workload_id": workload_id, "price_eur_per_gpu_hour": 3.0}, intervals, T0, Settings())
    receipt = sign_receipt(receipt, load_or_create_key(tmp_path / "k.pem"))
    records = [*[("node.registry", r) for r in fleet.registrations(T0)], ("workload.events", sub),
               ("settlement.receipts", receipt), ("billing.records", billing)]  # fmt: skip
    return messages(records), receipt, billing


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


@pytest.fixture
def ledger():
    gateway = LiteSVMGateway()
    payer = Keypair()
    gateway.airdrop(payer.pubkey(), 10 * LAMPORTS_PER_SOL)
    return gateway, payer


def settings_for(base: str) -> Settings:
    s = Settings()
    s.settlement.stripe_api_key = stripe_standin.API_KEY
    s.settlement.stripe_api_base = base
    s.settlement.stripe_customers = {"acme": "cus_acme"}
    return s


def state(store, gateway, wallet):
    tables = ["carbon_receipts", "billing_records", "payouts", "workloads"]
    counts = {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}
    sums = store.query("SELECT sum(charge) AS c, sum(fee) AS f, sum(payout) AS p FROM billing_records")[0]
    return counts, sums, gateway.balance(wallet)


def test_usage_metered_and_gamer_paid_once_even_when_replayed(store, ledger, tmp_path):
    gateway, payer = ledger
    app = stripe_standin.create()
    msgs, receipt, billing = settlement_batch(tmp_path)
    wallet = gamer_wallet()
    gateway.airdrop(wallet, LAMPORTS_PER_SOL // 100)  # an existing wallet (rent-exempt)
    with serve(app) as base:
        settings = settings_for(base)
        settler = Settler(store, settings, StripeMeterReporter(settings.settlement), gateway, payer)
        store.write(*rows_from_messages(msgs))
        before = gateway.balance(wallet)
        stats = settler.settle_pending()
        assert (stats.stripe_reported, stats.payouts_paid) == (1, 1)
        first = state(store, gateway, wallet)

        store.write(*rows_from_messages(msgs))  # the same settlement input, consumed again
        settler.settle_pending()
        assert state(store, gateway, wallet) == first
    event = app.state.events[billing["billing_id"]]
    assert len(app.state.events) == 1
    assert event["payload"] == {"stripe_customer_id": "cus_acme", "value": str(round(billing["gpu_hours"] * 3600))}
    lamports = eur_to_lamports(billing["payout"], settings.settlement.eur_per_sol)
    assert first[2] - before == lamports  # to the lamport
    payout = store.query("SELECT * FROM payouts")[0]
    assert payout["status"] == "paid" and payout["memo"] == receipt_hash(receipt) and payout["lamports"] == lamports
    tx = gateway.svm.get_transaction(Signature.from_string(payout["reference"]))
    assert any(receipt_hash(receipt) in line for line in tx.logs())


def test_stripe_outage_is_retried_and_a_lost_response_is_not_billed_twice(store, tmp_path):
    app = stripe_standin.create(fail_first=3)  # the SDK retries twice, then the pass records a failure
    msgs, _receipt, _billing = settlement_batch(tmp_path)
    with serve(app) as base:
        settings = settings_for(base)
        settler = Settler(store, settings, StripeMeterReporter(settings.settlement))
        store.write(*rows_from_messages(msgs))
        assert settler.settle_pending().stripe_failed == 1
        assert store.query("SELECT stripe_status FROM billing_records")[0]["stripe_status"] == "failed"
        assert settler.settle_pending().stripe_reported == 1
        # as if the answer had been lost: the record is sent again, and Stripe's identifier check stops it
        store.execute_write("UPDATE billing_records SET stripe_status = NULL")
        settler.settle_pending()
    assert len(app.state.events) == 1
    assert store.query("SELECT stripe_status FROM billing_records")[0]["stripe_status"] in ("reported", "duplicate")


def test_failed_payout_is_retried_not_lost(store, ledger, tmp_path):
    gateway, payer = ledger
    msgs, _receipt, billing = settlement_batch(tmp_path, hours=0.05)  # a payout below a new account's rent
    wallet = gamer_wallet()
    settler = Settler(store, Settings(), None, gateway, payer)
    store.write(*rows_from_messages(msgs))
    assert settler.settle_pending().payouts_failed == 1
    row = store.query("SELECT status, reason, attempts FROM payouts")[0]
    assert row["status"] == "failed" and "Rent" in row["reason"] and row["attempts"] == 1
    gateway.airdrop(wallet, LAMPORTS_PER_SOL // 100)  # the wallet now exists
    assert settler.settle_pending().payouts_paid == 1
    assert store.query("SELECT status, attempts FROM payouts")[0] == {"status": "paid", "attempts": 2}
    lamports = eur_to_lamports(billing["payout"], Settings().settlement.eur_per_sol)
    assert gateway.balance(wallet) == LAMPORTS_PER_SOL // 100 + lamports


def test_a_sent_payout_confirmed_later_is_not_sent_again(store, ledger, tmp_path):
    gateway, payer = ledger
    msgs, _receipt, _billing = settlement_batch(tmp_path)
    wallet = gamer_wallet()
    gateway.airdrop(wallet, LAMPORTS_PER_SOL // 100)
    settler = Settler(store, Settings(), None, gateway, payer)
    store.write(*rows_from_messages(msgs))
    settler.settle_pending()
    paid = gateway.balance(wallet)
    store.execute_write("UPDATE payouts SET status = 'sent'")  # as if the process died after sending
    assert settler.settle_pending().payouts_paid == 1
    assert gateway.balance(wallet) == paid and store.query("SELECT status FROM payouts")[0]["status"] == "paid"


def test_datacenter_work_is_metered_but_not_paid_in_sol(store, ledger, tmp_path):
    gateway, payer = ledger
    msgs, _r, _b = settlement_batch(tmp_path, node_id="dc-fr-h100-1")
    store.write(*rows_from_messages(msgs))
    assert Settler(store, Settings(), None, gateway, payer).settle_pending().payouts_paid == 0
