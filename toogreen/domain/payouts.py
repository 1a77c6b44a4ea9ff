"""Gamer payouts in lamports: when a wallet can be paid, and the memo a payout's transaction carries.

Solana refuses a transfer that leaves a new account (or any account below the rent-exempt minimum) holding less
than ``Rent::minimum_balance(0)``, so what a provider is owed accrues until the wallet's balance plus the owed
amount reaches it; then one transfer pays everything owed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def can_pay(wallet_lamports: int, owed_lamports: int, rent_exempt_lamports: int) -> bool:
    """Whether a transfer of ``owed_lamports`` to a wallet now holding ``wallet_lamports`` (0: it does not exist)
    leaves it rent-exempt, as Solana requires."""
    return owed_lamports > 0 and wallet_lamports + owed_lamports >= rent_exempt_lamports


def payout_memo(receipt_hashes: Sequence[str]) -> str:
    """The memo of a payout: the receipt's hash when it settles one receipt; for several (a memo is limited in size)
    their count and the SHA-256 of their sorted, newline-joined hashes, the list being kept in the ledger."""
    if not receipt_hashes:
        raise ValueError("a payout settles at least one receipt")
    if len(receipt_hashes) == 1:
        return receipt_hashes[0]
    digest = hashlib.sha256("\n".join(sorted(receipt_hashes)).encode()).hexdigest()
    return f"{len(receipt_hashes)} receipts sha256:{digest}"
