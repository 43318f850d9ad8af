"""What the updater answers, from the card the ledger knew and the one charged now (pure)."""

from __future__ import annotations

from typing import Any

from dunning.card_updater.provider import KnownCard, Result, compare

KNOWN = KnownCard("pm_old", "fp_old", "0341", 1, 2024)


def _pm(pm_id: str, fingerprint: str, last4: str, month: int, year: int) -> dict[str, Any]:
    card = {"fingerprint": fingerprint, "last4": last4, "exp_month": month, "exp_year": year}
    return {"id": pm_id, "object": "payment_method", "card": card}


def test_each_result_and_what_changed() -> None:
    assert compare(KNOWN, _pm("pm_old", "fp_old", "0341", 1, 2024)) == (Result.UNCHANGED, {})
    assert compare(KNOWN, _pm("pm_old", "fp_old", "0341", 1, 2029)) == (
        Result.NEW_EXPIRY,
        {"expiry": ["01/2024", "01/2029"]},
    )
    assert compare(KNOWN, _pm("pm_new", "fp_new", "4242", 12, 2031)) == (
        Result.NEW_CARD,
        {"card": ["pm_old 0341", "pm_new 4242"]},
    )
    assert compare(KNOWN, None) == (Result.CONTACT_CARDHOLDER, {"card": ["pm_old", None]})


def test_a_first_read_of_an_unknown_card_is_no_hit() -> None:
    assert compare(KnownCard(), _pm("pm_new", "fp_new", "4242", 12, 2031))[0] == Result.UNCHANGED
