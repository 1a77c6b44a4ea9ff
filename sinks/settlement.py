"""After each sink batch: report new billing records to Stripe and pay gamers in SOL, from what DuckDB holds.

Both are retried on later passes until done (or ``max_payout_attempts``), and both are idempotent: Stripe by
the meter event's identifier, Solana by the payout ledger row written before the transaction is sent. A gamer's
payouts to a new wallet accrue (status ``accruing``) until what is owed reaches Solana's rent-exempt minimum
(``solana_rent_exempt_lamports``); then one transaction pays it all, and each settled row records its signature."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from sinks.duckdb_store import Store
from sinks.solana_payouts import PayoutFailed, SolanaGateway, eur_to_lamports, payout_transaction
from sinks.stripe_meter import StripeMeterReporter
from toogreen.domain.payouts import can_pay, payout_memo
from toogreen.settings import Settings

log = logging.getLogger(__name__)
DONE_STRIPE = ("reported", "duplicate", "no customer")

PENDING_STRIPE_SQL = f"""
SELECT b.billing_id, b.ts_ms, b.gpu_hours, w.submitter, coalesce(b.stripe_attempts, 0) AS attempts
FROM billing_records b LEFT JOIN workloads w USING (workload_id)
WHERE coalesce(b.stripe_status, '') NOT IN {DONE_STRIPE} AND coalesce(b.stripe_attempts, 0) < ?
ORDER BY b.ts_ms
"""
PENDING_PAYOUTS_SQL = """
SELECT b.billing_id, b.workload_id, b.node_id, b.payout, b.currency, n.wallet, r.receipt_hash,
       p.status, p.reference, coalesce(p.attempts, 0) AS attempts
FROM billing_records b
JOIN nodes n USING (node_id)
JOIN carbon_receipts r USING (workload_id)
LEFT JOIN payouts p ON p.payout_id = b.billing_id || ':solana'
WHERE n.node_type = 'gamer' AND n.wallet IS NOT NULL AND b.payout > 0
  AND coalesce(p.status, '') <> 'paid' AND coalesce(p.attempts, 0) < ?
ORDER BY b.ts_ms
"""

# The ledger row, with the transaction's signature, goes in before the transaction is sent; one row per billing
# record, so a payout settling several records puts the same signature on each of them.
LEDGER_ROW_SQL = """
INSERT INTO payouts (payout_id, workload_id, node_id, rail, amount, currency, status, reference, ts_ms, wallet,
                     lamports, memo, attempts, receipt_hash, reason)
VALUES (?, ?, ?, 'solana', ?, ?, 'sent', ?, epoch_ms(now()), ?, ?, ?, ?, ?, NULL)
ON CONFLICT (payout_id) DO UPDATE SET status = 'sent', reference = excluded.reference, attempts = excluded.attempts,
                                      ts_ms = excluded.ts_ms, lamports = excluded.lamports, memo = excluded.memo,
                                      receipt_hash = excluded.receipt_hash, reason = NULL
"""
# Owed to a wallet that a transfer of this size cannot create yet: no transaction, no attempt spent; ts_ms stays
# when it began to accrue.
ACCRUING_ROW_SQL = """
INSERT INTO payouts (payout_id, workload_id, node_id, rail, amount, currency, status, reference, ts_ms, wallet,
                     lamports, memo, attempts, receipt_hash, reason)
VALUES (?, ?, ?, 'solana', ?, ?, 'accruing', NULL, epoch_ms(now()), ?, ?, NULL, ?, ?, ?)
ON CONFLICT (payout_id) DO UPDATE SET status = 'accruing', reference = NULL, memo = NULL,
                                      lamports = excluded.lamports, reason = excluded.reason
"""


@dataclass
class SettleStats:
    stripe_reported: int = 0
    stripe_failed: int = 0
    payouts_paid: int = 0
    payouts_failed: int = 0
    payouts_accruing: int = 0


class Settler:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        stripe_reporter: StripeMeterReporter | None = None,
        gateway: SolanaGateway | None = None,
        payer: Keypair | None = None,
    ) -> None:
        self.store, self.settings = store, settings
        self.stripe = stripe_reporter
        self.gateway, self.payer = gateway, payer

    def settle_pending(self) -> SettleStats:
        stats = SettleStats()
        if self.stripe is not None:
            self._report_usage(stats)
        if self.gateway is not None and self.payer is not None:
            self._pay_gamers(stats)
        return stats

    def _report_usage(self, stats: SettleStats) -> None:
        assert self.stripe is not None
        for row in self.store.query(PENDING_STRIPE_SQL, [self.settings.settlement.max_payout_attempts]):
            customer = self.stripe.customer_for(row["submitter"])
            if customer is None:
                status = "no customer"
            else:
                try:
                    status = self.stripe.report(row, customer)
                    stats.stripe_reported += 1
                except stripe.StripeError as exc:
                    log.warning("Stripe meter event for %s failed: %s", row["billing_id"], exc)
                    status = "failed"
                    stats.stripe_failed += 1
            self.store.execute_write(
                "UPDATE billing_records SET stripe_status = ?, stripe_attempts = ? WHERE billing_id = ?",
                [status, row["attempts"] + 1, row["billing_id"]],
            )

    def _pay_gamers(self, stats: SettleStats) -> None:
        """Per wallet: one transfer of everything owed to it, once the wallet exists or the owed amount reaches
        the rent-exempt minimum of a new account; until then the owed payouts accrue in the ledger."""
        assert self.gateway is not None and self.payer is not None
        owed: dict[str, list[dict[str, Any]]] = {}
        for row in self.store.query(PENDING_PAYOUTS_SQL, [self.settings.settlement.max_payout_attempts]):
            if row["status"] == "sent" and self.gateway.confirmed(Signature.from_string(row["reference"])):
                self._mark([f"{row['billing_id']}:solana"], "paid", None)  # sent earlier, confirmed now
                stats.payouts_paid += 1
                continue
            owed.setdefault(row["wallet"], []).append(row)
        for wallet, rows in owed.items():
            self._pay_wallet(wallet, rows, stats)

    def _pay_wallet(self, wallet: str, rows: list[dict[str, Any]], stats: SettleStats) -> None:
        assert self.gateway is not None and self.payer is not None
        s = self.settings.settlement
        lamports = [eur_to_lamports(r["payout"], s.eur_per_sol) for r in rows]
        pubkey = Pubkey.from_string(wallet)
        held = self.gateway.balance(pubkey)
        if not can_pay(held, sum(lamports), s.solana_rent_exempt_lamports):
            reason = (
                f"{sum(lamports)} lamports owed to a wallet holding {held}: paid once it can hold "
                f"{s.solana_rent_exempt_lamports} (Solana's rent-exempt minimum)"
            )
            for row, amount in zip(rows, lamports, strict=True):
                self.store.execute_write(
                    ACCRUING_ROW_SQL,
                    [f"{row['billing_id']}:solana", row["workload_id"], row["node_id"], row["payout"],
                     row["currency"], wallet, amount, row["attempts"], row["receipt_hash"], reason],
                )  # fmt: skip
            stats.payouts_accruing += len(rows)
            return
        memo = payout_memo([r["receipt_hash"] for r in rows])
        tx = payout_transaction(self.payer, pubkey, sum(lamports), memo, self.gateway.latest_blockhash())
        payout_ids = [f"{r['billing_id']}:solana" for r in rows]
        for payout_id, row, amount in zip(payout_ids, rows, lamports, strict=True):
            self.store.execute_write(
                LEDGER_ROW_SQL,
                [payout_id, row["workload_id"], row["node_id"], row["payout"], row["currency"], str(tx.signatures[0]),
                 wallet, amount, memo, row["attempts"] + 1, row["receipt_hash"]],
            )  # fmt: skip
        try:
            self.gateway.send(tx)
        except PayoutFailed as exc:
            self._mark(payout_ids, "failed", str(exc)[:500])
            stats.payouts_failed += len(rows)
        else:
            self._mark(payout_ids, "paid", None)
            stats.payouts_paid += len(rows)

    def _mark(self, payout_ids: list[str], status: str, reason: str | None) -> None:
        self.store.execute_write(
            "UPDATE payouts SET status = ?, reason = ? WHERE list_contains(?, payout_id)", [status, reason, payout_ids]
        )


def build_settler(store: Store, settings: Settings) -> Settler | None:
    """Stripe where a key is configured; Solana where an RPC URL is ('litesvm' = an in-process VM, funded)."""
    from sinks.solana_payouts import LAMPORTS_PER_SOL, LiteSVMGateway, RpcGateway, load_or_create_payer

    s = settings.settlement
    reporter = StripeMeterReporter(s) if s.stripe_api_key else None
    gateway: SolanaGateway | None = None
    payer = None
    if s.solana_rpc_url:
        payer = load_or_create_payer(s.solana_payer_key_path)
        if s.solana_rpc_url == "litesvm":
            local = LiteSVMGateway()
            local.airdrop(payer.pubkey(), 1_000 * LAMPORTS_PER_SOL)  # the gamers' wallets start out not existing
            gateway = local
        else:
            gateway = RpcGateway(s.solana_rpc_url)
    if reporter is None and gateway is None:
        return None
    return Settler(store, settings, reporter, gateway, payer)
