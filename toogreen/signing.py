"""The platform's Ed25519 receipt-signing key (a PEM file created on first use, path configurable), signing,
and verification that needs nothing but the public key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from toogreen.domain.receipts import canonical_bytes


def _load(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``; created there (mode 0600) on first use. Two processes starting together agree on one
    key: the file is written under a temporary name and linked into place, so only one creation wins."""
    if path.exists():
        return _load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    try:
        os.link(tmp, path)  # fails if another process got there first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _load(path)


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_key_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from PEM or from 64 hex characters."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def sign_receipt(receipt: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    signed = {**receipt, "public_key": public_key_hex(key), "signature": ""}
    signed["signature"] = key.sign(canonical_bytes(signed)).hex()
    return signed


@dataclass(frozen=True)
class Verification:
    valid: bool
    failed_check: str | None = None

    def __str__(self) -> str:
        return "valid" if self.valid else f"invalid: {self.failed_check}"


REQUIRED = ("receipt_id", "workload_id", "issued_ms", "intervals", "kwh", "gco2_actual", "gco2_baseline", "gco2_saved",
            "method", "data_sources", "signature", "public_key")  # fmt: skip


def verify_receipt(receipt: Mapping[str, Any], trusted: Ed25519PublicKey) -> Verification:
    """Checks, in order: fields present, the key it names is the trusted one, the signature over the canonical
    encoding, and that the totals add up from the intervals."""
    missing = [f for f in REQUIRED if f not in receipt]
    if missing:
        return Verification(False, f"missing fields: {', '.join(missing)}")
    trusted_hex = trusted.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    if receipt["public_key"] != trusted_hex:
        return Verification(False, "public key in the receipt is not the platform's")
    try:
        trusted.verify(bytes.fromhex(receipt["signature"]), canonical_bytes(receipt))
    except (InvalidSignature, ValueError):
        return Verification(False, "signature does not match the receipt's contents")
    kwh = sum(i["kwh"] for i in receipt["intervals"])
    gco2 = sum(i["gco2"] for i in receipt["intervals"])
    if abs(kwh - receipt["kwh"]) > 1e-5 * max(1.0, kwh) or abs(gco2 - receipt["gco2_actual"]) > 1e-5 * max(1.0, gco2):
        return Verification(False, "totals do not add up from the intervals")
    return Verification(True)
