"""When a wallet can be paid in lamports, and the memo of a payout settling several receipts."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toogreen.domain.payouts import can_pay, payout_memo

RENT = 890_880
lamports = st.integers(min_value=0, max_value=10**12)


@given(held=lamports, owed=lamports)
def test_a_payout_is_made_exactly_when_the_wallet_ends_rent_exempt(held, owed):
    assert can_pay(held, owed, RENT) == (owed > 0 and held + owed >= RENT)


def test_an_existing_wallet_takes_any_amount_a_new_one_only_the_minimum():
    assert can_pay(RENT, 1, RENT) and not can_pay(0, RENT - 1, RENT) and can_pay(0, RENT, RENT)


@given(st.lists(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), min_size=2, max_size=50, unique=True))
def test_a_memo_for_several_receipts_is_short_and_does_not_depend_on_their_order(hashes):
    memo = payout_memo(hashes)
    assert memo == payout_memo(list(reversed(hashes))) and len(memo.encode()) < 100
    assert memo.endswith(hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest())


def test_a_memo_for_one_receipt_is_its_hash():
    assert payout_memo(["ab" * 32]) == "ab" * 32
    with pytest.raises(ValueError):
        payout_memo([])
