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
from sinks.settlement import Settler, SettleStats
from sinks.solana_payouts import LAMPORTS_PER_SOL, LiteSVMGateway, eur_to_lamports
from sinks.stripe_meter import StripeMeterReporter
from tests.builders import messages
from tests.standins import stripe as stripe_standin
from tests.standins.server import serve
from toogreen.domain.accounting import Slot, accrue
from toogreen.domain.payouts import payout_memo
from toogreen.domain.receipts import receipt_hash
from toogreen.domain.settlement import interim_billing, settle
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


def test_failed_payout_is_retried_not_lost(store, tmp_path):
    gateway, payer = LiteSVMGateway(), Keypair()  # a payer without lamports: the transfer fails on chain
    msgs, _receipt, billing = settlement_batch(tmp_path)
    wallet = gamer_wallet()
    gateway.airdrop(wallet, LAMPORTS_PER_SOL // 100)
    settler = Settler(store, Settings(), None, gateway, payer)
    store.write(*rows_from_messages(msgs))
    assert settler.settle_pending().payouts_failed == 1
    row = store.query("SELECT status, reason, attempts FROM payouts")[0]
    assert row["status"] == "failed" and row["reason"] and row["attempts"] == 1
    gateway.airdrop(payer.pubkey(), LAMPORTS_PER_SOL)  # the payer is funded now
    assert settler.settle_pending().payouts_paid == 1
    assert store.query("SELECT status, attempts FROM payouts")[0] == {"status": "paid", "attempts": 2}
    lamports = eur_to_lamports(billing["payout"], Settings().settlement.eur_per_sol)
    assert gateway.balance(wallet) == LAMPORTS_PER_SOL // 100 + lamports


def test_payouts_to_a_new_wallet_accrue_until_one_transfer_can_create_it(store, ledger, tmp_path):
    gateway, payer = ledger
    settings = Settings()
    rent = settings.settlement.solana_rent_exempt_lamports
    assert rent == gateway.svm.minimum_balance_for_rent_exemption(0)  # the configured default is the chain's rule
    settler = Settler(store, settings, None, gateway, payer)
    wallet = gamer_wallet()
    first_msgs, first_receipt, first_bill = settlement_batch(tmp_path, hours=0.05, workload_id="w1")
    first = eur_to_lamports(first_bill["payout"], settings.settlement.eur_per_sol)
    assert 0 < first < rent  # alone, a transfer Solana refuses (InsufficientFundsForRent)

    store.write(*rows_from_messages(first_msgs))
    stats = settler.settle_pending()
    assert (stats.payouts_accruing, stats.payouts_paid, stats.payouts_failed) == (1, 0, 0)
    row = store.query("SELECT status, lamports, reference, attempts, reason FROM payouts")[0]
    assert (row["status"], row["lamports"], row["reference"], row["attempts"]) == ("accruing", first, None, 0)
    assert str(rent) in row["reason"]
    assert gateway.balance(wallet) == 0  # no transaction was sent

    second_msgs, second_receipt, second_bill = settlement_batch(tmp_path, hours=0.05, workload_id="w2")
    second = eur_to_lamports(second_bill["payout"], settings.settlement.eur_per_sol)
    assert first + second >= rent
    store.write(*rows_from_messages(second_msgs))
    stats = settler.settle_pending()
    assert (stats.payouts_accruing, stats.payouts_paid) == (0, 2)
    rows = store.query("SELECT * FROM payouts ORDER BY workload_id")
    assert [r["status"] for r in rows] == ["paid", "paid"] and [r["lamports"] for r in rows] == [first, second]
    assert len({r["reference"] for r in rows}) == 1  # one transaction settles both
    hashes = [receipt_hash(first_receipt), receipt_hash(second_receipt)]
    assert [r["receipt_hash"] for r in rows] == hashes and {r["memo"] for r in rows} == {payout_memo(hashes)}
    assert gateway.balance(wallet) == first + second  # the wallet now exists, holding the sum
    tx = gateway.svm.get_transaction(Signature.from_string(rows[0]["reference"]))
    assert any(payout_memo(hashes) in line for line in tx.logs())

    paid = state(store, gateway, wallet)
    store.write(*rows_from_messages(first_msgs + second_msgs))  # the log, consumed again
    assert settler.settle_pending() == SettleStats()
    assert state(store, gateway, wallet) == paid


def test_an_existing_wallet_is_paid_each_receipt_at_once(store, ledger, tmp_path):
    gateway, payer = ledger
    wallet = gamer_wallet()
    gateway.airdrop(wallet, Settings().settlement.solana_rent_exempt_lamports)  # exists, rent-exempt
    msgs, receipt, billing = settlement_batch(tmp_path, hours=0.05)  # a payout below a new account's minimum
    store.write(*rows_from_messages(msgs))
    assert Settler(store, Settings(), None, gateway, payer).settle_pending().payouts_paid == 1
    lamports = eur_to_lamports(billing["payout"], Settings().settlement.eur_per_sol)
    row = store.query("SELECT status, memo FROM payouts")[0]
    assert row == {"status": "paid", "memo": receipt_hash(receipt)}
    assert gateway.balance(wallet) == Settings().settlement.solana_rent_exempt_lamports + lamports


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


def test_interim_billing_records_are_metered_once_each_and_add_up_with_the_final_one(store, tmp_path):
    """While it runs, a record per metering interval (an hour here): each a meter event with its own deterministic
    identifier, sent once even when the log is consumed again; with the final record they bill the whole run."""
    settings = Settings()
    hours = 3.5
    intervals = []
    for hour in range(4):  # what the node's partition accrued, cut at every metering boundary
        start, end = T0 + hour * 3_600_000, T0 + int(min(hour + 1, hours) * 3_600_000)
        intervals = accrue(intervals, Slot("dc-fr-h100-1", "FR", 1.2, 1.0, 50.0, 0), start, end,
                           1.6e6 * (end - start) / 3_600_000, "c", 3_600_000)  # fmt: skip
    interim = []
    for hour in range(1, 4):
        record, intervals = interim_billing("w1", "dc-fr-h100-1", intervals, T0 + hour * 3_600_000, 3.0, settings)
        assert record is not None
        interim.append(record)
    settled = settle({"workload_id": "w1", "price_eur_per_gpu_hour": 3.0}, intervals, T0 + 13_000_000, settings)
    assert settled is not None
    receipt, final = settled
    receipt = sign_receipt(receipt, load_or_create_key(tmp_path / "k.pem"))
    sub = submission_event({"name": "j", "workload_type": "training", "image": "i", "vram_mb": 1000,
                            "expected_hours": hours, "submitter": "acme"}, "w1", T0)  # fmt: skip
    records = [("workload.events", sub), *[("billing.records", r) for r in interim], ("settlement.receipts", receipt),
               ("billing.records", final)]  # fmt: skip
    app = stripe_standin.create()
    with serve(app) as base:
        settings = settings_for(base)
        settler = Settler(store, settings, StripeMeterReporter(settings.settlement))
        store.write(*rows_from_messages(messages(records[:4])))  # the interim records, while it runs
        assert settler.settle_pending().stripe_reported == 3
        store.write(*rows_from_messages(messages(records)))  # then the rest, the interim ones consumed again
        assert settler.settle_pending().stripe_reported == 1
        store.write(*rows_from_messages(messages(records)))  # and the whole log once more
        settler.settle_pending()
    ids = [r["billing_id"] for r in (*interim, final)]
    assert sorted(app.state.events) == sorted(ids) and final["metering_ids"] == [*sorted(ids[:3]), ids[3]]
    assert [app.state.events[i]["payload"]["value"] for i in ids] == ["3600", "3600", "3600", "1800"]
    rows = store.query("SELECT billing_id, gpu_hours, kwh, charge FROM billing_records ORDER BY billing_id")
    assert len(rows) == 4 and sum(r["gpu_hours"] for r in rows) == pytest.approx(hours)
    assert sum(r["kwh"] for r in rows) == pytest.approx(receipt["kwh"]) and sum(r["charge"] for r in rows) == 10.5
