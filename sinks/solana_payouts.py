"""Paying gamers in SOL: a system-program transfer to the provider's wallet with a memo holding the receipt hash,
signed by the platform's payer key. Real transactions: executed in tests (and in the demo) by an in-process
Solana VM (``solders.litesvm.LiteSVM``), and in production sent to an RPC endpoint.

The payout ledger (DuckDB ``payouts``) gets its row, with the transaction's signature, before the transaction is
sent; a payout already paid is never sent again, and one that failed is retried."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
LAMPORTS_PER_SOL = 1_000_000_000


class PayoutFailed(RuntimeError):
    pass


def eur_to_lamports(eur: float, eur_per_sol: float) -> int:
    return round(eur / eur_per_sol * LAMPORTS_PER_SOL)


def load_or_create_payer(path: Path) -> Keypair:
    """The platform's payer keypair (a JSON array of 64 bytes, as the Solana CLI writes it)."""
    if path.exists():
        return Keypair.from_bytes(bytes(json.loads(path.read_text())))
    path.parent.mkdir(parents=True, exist_ok=True)
    payer = Keypair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(list(bytes(payer)), fh)
    return payer


def payout_transaction(payer: Keypair, wallet: Pubkey, lamports: int, memo: str, blockhash: Hash) -> Transaction:
    instructions = [
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=wallet, lamports=lamports)),
        Instruction(MEMO_PROGRAM_ID, memo.encode(), [AccountMeta(payer.pubkey(), is_signer=True, is_writable=False)]),
    ]
    return Transaction([payer], Message(instructions, payer.pubkey()), blockhash)


class SolanaGateway(Protocol):
    def latest_blockhash(self) -> Hash: ...

    def send(self, tx: Transaction) -> None: ...

    def confirmed(self, signature: Signature) -> bool: ...

    def balance(self, pubkey: Pubkey) -> int: ...


class LiteSVMGateway:
    """An in-process Solana VM: executes the system and memo programs for real, keeps state in memory."""

    def __init__(self, svm: Any = None) -> None:
        from solders.litesvm import LiteSVM

        self.svm: Any = svm or LiteSVM()

    def latest_blockhash(self) -> Hash:
        return self.svm.latest_blockhash()

    def send(self, tx: Transaction) -> None:
        result = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()  # a new slot: a retry is a new transaction, as on a real cluster
        if type(result).__name__ == "FailedTransactionMetadata":
            raise PayoutFailed(f"transaction failed: {result.err()}")

    def confirmed(self, signature: Signature) -> bool:
        return self.svm.get_transaction(signature) is not None

    def balance(self, pubkey: Pubkey) -> int:
        return self.svm.get_balance(pubkey) or 0

    def airdrop(self, pubkey: Pubkey, lamports: int) -> None:
        self.svm.airdrop(pubkey, lamports)


class RpcGateway:
    """A Solana RPC endpoint (production)."""

    def __init__(self, url: str) -> None:
        from solana.rpc.api import Client

        self.client = Client(url)

    def latest_blockhash(self) -> Hash:
        return self.client.get_latest_blockhash().value.blockhash

    def send(self, tx: Transaction) -> None:
        from solana.rpc.core import RPCException

        try:
            self.client.send_transaction(tx)
        except RPCException as exc:
            raise PayoutFailed(str(exc)) from exc

    def confirmed(self, signature: Signature) -> bool:
        status = self.client.get_signature_statuses([signature]).value[0]
        return status is not None and status.err is None

    def balance(self, pubkey: Pubkey) -> int:
        return self.client.get_balance(pubkey).value
