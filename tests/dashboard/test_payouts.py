"""The Providers page shows a gamer's payouts as the ledger holds them: accruing (owed to a wallet that does not
exist yet, and what it waits for) until one real LiteSVM transfer pays them all, then paid with its signature."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from api.app import create_app
from connectors.fleet_sim import demo_wallet
from sinks.rows import billing_row, receipt_row
from sinks.settlement import Settler
from sinks.solana_payouts import LAMPORTS_PER_SOL, LiteSVMGateway
from tests.api.conftest import ADMIN, RecordingProducer, filled_store
from tests.dashboard.conftest import served
from toogreen.domain.accounting import Slot, accrue
from toogreen.domain.settlement import settle
from toogreen.settings import Settings
from toogreen.signing import load_or_create_key, sign_receipt

pytestmark = pytest.mark.integration
GAMER_NODE = "gm-fr-4090-1"  # camille's


def gamer_job(store, settings: Settings, workload_id: str) -> None:
    """A settled hour on the gamer's node at 0.1 €/GPU-hour: a payout below a new wallet's rent-exempt minimum."""
    intervals = accrue([], Slot(GAMER_NODE, "FR", 1.0, 1.0, 50.0, 0), 0, 3_600_000, 3.6e6, "c")
    receipt, billing = settle(
        {"workload_id": workload_id, "price_eur_per_gpu_hour": 0.1}, intervals, 3_600_000, settings
    )
    receipt = sign_receipt(receipt, load_or_create_key(settings.settlement.signing_key_path))
    store.write({"carbon_receipts": [receipt_row(receipt)], "billing_records": [billing_row(billing)]}, [])


def test_accruing_payouts_show_what_they_wait_for_then_one_signature_pays_them(page: Page, tmp_path):
    settings = Settings()
    store = filled_store(tmp_path / "api.duckdb")
    gateway, payer = LiteSVMGateway(), Keypair()
    gateway.airdrop(payer.pubkey(), LAMPORTS_PER_SOL)
    settler = Settler(store, settings, None, gateway, payer)
    try:
        with served(create_app(settings, store, RecordingProducer())) as url:
            gamer = page.request.post(f"{url}/api/v1/admin/tokens", headers=ADMIN,
                                      data={"role": "gamer", "subject": "camille"}).json()["token"]  # fmt: skip
            gamer_job(store, settings, "wl-g1")
            assert settler.settle_pending().payouts_accruing == 1
            page.goto(f"{url}/#token={gamer}")
            page.wait_for_selector("#who:not([hidden])")
            page.evaluate("location.hash = '#/providers'")
            first = page.locator('#payouts-table tr[data-payout="wl-g1"]')
            expect(first.locator(".payout-status")).to_have_text("accruing")
            rent = str(settings.settlement.solana_rent_exempt_lamports)
            expect(first.locator(".payout-status")).to_have_attribute("title", re.compile(rent))
            expect(first.locator(".accruing-note")).to_contain_text("not sent yet")
            owed = store.query("SELECT amount FROM payouts")[0]["amount"]
            expect(page.locator("#earnings-table tbody tr td").last).to_have_text(f"€{owed:.4f}")  # Accruing

            gamer_job(store, settings, "wl-g2")  # the second crosses the minimum: one transfer pays both
            assert settler.settle_pending().payouts_paid == 2
            rows = page.locator("#payouts-table tr[data-payout]")
            expect(rows.locator(".payout-status")).to_have_text(["paid", "paid"])  # the page refreshes by itself
            signatures = set(rows.locator("code.signature").all_inner_texts())
            assert signatures == {r["reference"] for r in store.query("SELECT reference FROM payouts")}
            assert len(signatures) == 1
            lamports = store.query("SELECT sum(lamports) AS n FROM payouts")[0]["n"]
            assert gateway.balance(Pubkey.from_string(demo_wallet(GAMER_NODE))) == lamports
    finally:
        store.close()
