"""Carbon receipts: one as signed, verification (public), the platform's public key (public)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException

from api.deps import SigningKeyDep, StoreDep
from api.responses import PublicKey, Receipt, Verification, documented
from api.security import PersonCaller
from sinks import queries
from toogreen.signing import public_key_hex, public_key_pem, verify_receipt

router = APIRouter(prefix="/api/v1", tags=["receipts"], responses=documented(400, 401, 403, 404, 413, 422))


def receipt_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The receipt as it was signed, from its DuckDB row."""
    return {**row, "intervals": json.loads(row["intervals"]), "data_sources": json.loads(row["data_sources"])}


@router.get("/receipts/{receipt_id}", response_model=Receipt)
def get_receipt(store: StoreDep, caller: PersonCaller, receipt_id: str) -> dict:
    row = queries.receipt(store, caller.scope, receipt_id)
    if row is None:
        raise HTTPException(404, f"unknown receipt {receipt_id!r}")
    return receipt_from_row(row)


@router.post("/receipts/verify", response_model=Verification)
def verify(receipt: dict[str, Any], key: SigningKeyDep) -> dict:
    try:
        result = verify_receipt(receipt, key.public_key())
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # fields of the wrong type: not a receipt
        return {"valid": False, "failed_check": f"not a receipt: {type(exc).__name__}: {exc}"}
    return {"valid": result.valid, "failed_check": result.failed_check}


@router.get("/public-key", response_model=PublicKey)
def public_key(key: SigningKeyDep) -> dict:
    return {"algorithm": "Ed25519", "hex": public_key_hex(key), "pem": public_key_pem(key)}
