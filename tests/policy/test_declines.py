"""The decline table and ``classify``."""

from __future__ import annotations

import pytest

from dunning.policy.declines import DECLINE_TABLE, DeclineClass, classify, normalize_code
from dunning.policy.network_rules import MC_NEVER_RETRY, VISA_CATEGORY_1

H = DeclineClass.HARD
F = DeclineClass.INSUFFICIENT_FUNDS
T = DeclineClass.TEMPORARY
D = DeclineClass.CARD_DATA
A = DeclineClass.AUTHENTICATION_REQUIRED
U = DeclineClass.UNKNOWN


def test_table_keys_are_in_canonical_form() -> None:
    for (field, code), rule in DECLINE_TABLE.items():
        assert normalize_code(field, code) == code
        assert isinstance(rule.decline_class, DeclineClass)
        assert rule.note


def test_network_never_retry_codes_are_never_retry_classes() -> None:
    for code in VISA_CATEGORY_1 | {"15"}:
        assert DECLINE_TABLE[("network_decline_code", code)].decline_class in {H, D}
    for mac in MC_NEVER_RETRY:
        assert DECLINE_TABLE[("network_advice_code", mac)].decline_class is H
    assert DECLINE_TABLE[("advice_code", "do_not_try_again")].decline_class is H


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("stolen_card", H), ("lost_card", H), ("fraudulent", H), ("pickup_card", H),
        ("restricted_card", H), ("revocation_of_authorization", H),
        ("revocation_of_all_authorizations", H), ("security_violation", H),
        ("do_not_try_again", H), ("currency_not_supported", H),
        ("insufficient_funds", F), ("withdrawal_count_limit_exceeded", F),
        ("card_velocity_exceeded", F),
        ("processing_error", T), ("issuer_not_available", T), ("try_again_later", T),
        ("reenter_transaction", T), ("generic_decline", U), ("do_not_honor", U),
        ("approve_with_id", T),
        ("expired_card", D), ("incorrect_number", D), ("incorrect_cvc", D),
        ("invalid_expiry_month", D), ("invalid_expiry_year", D), ("invalid_number", D),
        ("new_account_information_available", D),
        ("authentication_required", A), ("card_not_supported", A),
        ("call_issuer", U), (None, U), ("", U), ("something_stripe_adds_later", U),
    ],
)  # fmt: skip
def test_decline_codes(code: str | None, expected: DeclineClass) -> None:
    assert classify(code, "card_declined", None, None) is expected


@pytest.mark.parametrize(
    ("failure_code", "expected"),
    [("card_declined", U), ("expired_card", D), ("processing_error", T),
     ("authentication_required", A), ("account_closed", H), ("insufficient_funds", F)],
)  # fmt: skip
def test_failure_codes_alone(failure_code: str, expected: DeclineClass) -> None:
    assert classify(None, failure_code, None, None) is expected


@pytest.mark.parametrize(
    ("advice", "expected"),
    [("do_not_try_again", H), ("try_again_later", T), ("confirm_card_data", D)],
)
def test_stripe_advice_codes(advice: str, expected: DeclineClass) -> None:
    assert classify(None, None, advice, None) is expected


@pytest.mark.parametrize(
    ("mac", "expected"),
    [("01", D), ("02", T), ("03", H), ("21", H), ("24", F), ("27", F), ("30", F), ("99", U)],
)
def test_merchant_advice_codes(mac: str, expected: DeclineClass) -> None:
    assert classify(None, None, None, mac) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [("43", H), ("R1", H), ("14", D), ("15", D), ("51", F), ("05", U), ("91", T), ("1A", A)],
)
def test_network_decline_codes(code: str, expected: DeclineClass) -> None:
    assert classify(None, None, None, None, network_decline_code=code) is expected


@pytest.mark.parametrize(
    ("decline", "advice", "mac", "network", "expected"),
    [
        ("insufficient_funds", "do_not_try_again", None, None, H),
        ("generic_decline", None, None, "51", F),
        ("processing_error", None, "03", None, H),
        ("insufficient_funds", "try_again_later", None, None, F),
        ("processing_error", None, None, "14", D),
        ("insufficient_funds", None, None, "1A", A),
    ],
)
def test_most_restrictive_signal_wins(
    decline: str, advice: str | None, mac: str | None, network: str | None,
    expected: DeclineClass,
) -> None:  # fmt: skip
    assert classify(decline, None, advice, mac, network_decline_code=network) is expected


@pytest.mark.parametrize(
    ("decline", "network", "expected"),
    [
        ("do_not_honor", None, U),
        ("do_not_honor", "05", U),
        ("generic_decline", None, U),
        (None, "05", U),
        ("do_not_honor", "51", F),  # the network code says why: insufficient funds
        ("do_not_honor", "43", H),  # Visa category 1 beats an unexplained refusal
    ],
)
def test_unexplained_refusals_are_unknown_not_hard(
    decline: str | None, network: str | None, expected: DeclineClass
) -> None:
    """Visa puts 05 in category 4 (reattempts allowed); a repeat does not make it hard."""
    assert classify(decline, None, None, None, network_decline_code=network) is expected


def test_codes_are_normalised() -> None:
    assert classify(" Insufficient_Funds ", None, None, None) is F
    assert classify(None, None, None, "3") is H
    assert classify(None, None, None, None, network_decline_code="r0") is H
    assert classify(None, None, "DO_NOT_TRY_AGAIN", None) is H
