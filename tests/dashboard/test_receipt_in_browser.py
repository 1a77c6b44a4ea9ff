"""The browser verifies a carbon receipt by itself: Ed25519 through WebCrypto over the canonical encoding of
toogreen.domain.receipts, rebuilt in JavaScript from the response text. Checked against Python's encoding on
generated values, with the numbers written by json.dumps and by pydantic (which writes 1e-05 as 0.00001)."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page

from toogreen.domain.receipts import build_receipt, canonical_bytes
from toogreen.signing import public_key_hex, sign_receipt

pytestmark = pytest.mark.integration

VERIFY = """async ([text, key]) => {
  const m = await import("/js/receipt.js");
  return m.verifyReceipt(m.parseReceipt(text), key);
}"""
CANONICAL = """async (texts) => {
  const m = await import("/js/receipt.js");
  return texts.map((t) => Array.from(m.canonicalBytes(m.parseReceipt(t))));
}"""
FLOAT_REPR = """async (xs) => {
  const m = await import("/js/receipt.js");
  return xs.map((x) => m.pythonFloatRepr(x));
}"""


@pytest.fixture
def receipts_page(page: Page, static_site: str) -> Page:
    page.goto(static_site)  # the dashboard, signed out: its import map is what the module needs
    page.wait_for_selector("#sign-in-form")
    return page


def signed_receipt(key: Ed25519PrivateKey) -> dict[str, Any]:
    intervals = [
        {"node_id": "gm-fr-4090-1", "zone": "FR", "start_ms": 1_700_000_000_000, "end_ms": 1_700_000_060_000,
         "kwh": 0.00725, "carbon_gco2_per_kwh": 52.0, "gco2": 0.377, "gpu_ms": 60_000},
        {"node_id": "rc-es-h100-1", "zone": "ES", "start_ms": 1_700_000_060_000, "end_ms": 1_700_000_090_000,
         "kwh": 0.000093, "carbon_gco2_per_kwh": 26.25, "gco2": 0.00244125, "gpu_ms": 30_000},
    ]  # fmt: skip
    receipt = build_receipt("wl-browser", intervals, 1_700_000_100_000, 300.0, "fixed", ["grid.readings"])
    return sign_receipt(receipt, key)


def pydantic_json(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


@pytest.mark.parametrize("serialise", [json.dumps, pydantic_json], ids=["json", "pydantic"])
def test_a_signed_receipt_verifies_in_the_browser_and_a_tampered_one_does_not(receipts_page: Page, serialise):
    key = Ed25519PrivateKey.generate()
    receipt = signed_receipt(key)
    key_hex = public_key_hex(key)
    assert "9.3e-05" in json.dumps(receipt)  # a float Python writes in exponent form is among those signed

    result = receipts_page.evaluate(VERIFY, [serialise(receipt), key_hex])
    assert result["valid"] is True, result
    assert any("Ed25519" in check for check in result["checks"])

    tampered = {**receipt, "gco2_actual": receipt["gco2_actual"] / 2}
    result = receipts_page.evaluate(VERIFY, [serialise(tampered), key_hex])
    assert result == {**result, "valid": False, "failed_check": "signature does not match the receipt's contents"}

    other = public_key_hex(Ed25519PrivateKey.generate())
    result = receipts_page.evaluate(VERIFY, [serialise(receipt), other])
    assert result["failed_check"] == "public key in the receipt is not the platform's"

    missing = {k: v for k, v in receipt.items() if k != "intervals"}
    assert receipts_page.evaluate(VERIFY, [serialise(missing), key_hex])["failed_check"] == "missing fields: intervals"


FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FINITE | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        # "__proto__" is no key a receipt has, and a JavaScript object cannot hold it as one
        | st.dictionaries(st.text(max_size=8).filter(lambda k: k != "__proto__"), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "__proto__"), JSON_VALUES,
                                       max_size=6), min_size=1, max_size=5))  # fmt: skip
def test_the_browsers_canonical_encoding_is_pythons(receipts_page: Page, bodies: list[dict[str, Any]]):
    texts = [json.dumps(b) for b in bodies] + [pydantic_json(b) for b in bodies]
    got = receipts_page.evaluate(CANONICAL, texts)
    want = [list(canonical_bytes(b)) for b in bodies] * 2
    assert got == want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(xs=st.lists(FINITE, min_size=1, max_size=50))
def test_the_browser_writes_floats_as_python_repr_does(receipts_page: Page, xs: list[float]):
    assert receipts_page.evaluate(FLOAT_REPR, xs) == [repr(x) for x in xs]
