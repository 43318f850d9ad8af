"""Decline classification: one table from processor/network codes to a decline class.

Why one table: the retry engine, the preview and the reports must agree on what a
code means, and ops must be able to read the mapping in one place.

Sources (read 2025):
- Stripe decline codes: https://docs.stripe.com/declines/codes
- Stripe error codes (``failure_code``): https://docs.stripe.com/error-codes
- Stripe ``outcome.advice_code`` / ``network_advice_code`` / ``network_decline_code``:
  https://docs.stripe.com/api/charges/object#charge_object-outcome and
  https://docs.stripe.com/declines/card#retrying-issuer-declines
- Visa decline categories (Visa Rules, "Excessive reattempts", category 1-4 response codes)
- Mastercard merchant advice codes (MAC 01-30, Authorization Optimizer / TPE program)
"""

# ruff: noqa: E501  (the table reads best one code per line)
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Literal


class DeclineClass(StrEnum):
    """What a failed charge means for the next step.

    - ``hard``: the card is dead or the issuer refuses for good; never blind-retry,
      ask the customer for another card.
    - ``insufficient_funds``: money may arrive later; retry around paydays.
    - ``temporary``: an outage or an issuer asking to try again; retry after a short backoff.
    - ``card_data``: the stored card details are wrong or stale; wait for an updated card.
    - ``authentication_required``: the customer must act (3DS, card not usable here).
    - ``unknown``: the issuer did not say why (``do_not_honor``, ``generic_decline``,
      network 05: Visa category 4, reattempts allowed) or a code we do not recognise.
      About half of do_not_honor declines are insufficient funds in disguise (Adyen, as
      cited in docs/backtest.md), so the default policy retries them on paydays.
    """

    HARD = "hard"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    TEMPORARY = "temporary"
    CARD_DATA = "card_data"
    AUTHENTICATION_REQUIRED = "authentication_required"
    UNKNOWN = "unknown"


CodeField = Literal[
    "decline_code", "failure_code", "advice_code", "network_advice_code", "network_decline_code"
]


@dataclass(frozen=True)
class CodeRule:
    """One row of the table: the class of a code and why."""

    decline_class: DeclineClass
    note: str


_H = DeclineClass.HARD
_F = DeclineClass.INSUFFICIENT_FUNDS
_T = DeclineClass.TEMPORARY
_D = DeclineClass.CARD_DATA
_A = DeclineClass.AUTHENTICATION_REQUIRED
_U = DeclineClass.UNKNOWN

# fmt: off
DECLINE_TABLE: Mapping[tuple[CodeField, str], CodeRule] = {
    # --- Stripe `decline_code` (docs.stripe.com/declines/codes) -----------------------
    ("decline_code", "authentication_required"): CodeRule(_A, "issuer wants 3DS: customer must authenticate"),
    ("decline_code", "approve_with_id"): CodeRule(_T, "could not be authorised; Stripe: try again"),
    ("decline_code", "call_issuer"): CodeRule(_U, "unknown reason; customer should call the issuer"),
    ("decline_code", "card_not_supported"): CodeRule(_A, "card not usable for this purchase; customer action"),
    ("decline_code", "card_velocity_exceeded"): CodeRule(_F, "balance or credit limit reached"),
    ("decline_code", "currency_not_supported"): CodeRule(_H, "card never supports this currency"),
    ("decline_code", "do_not_honor"): CodeRule(_U, "unexplained refusal (Visa category 4): often money or a hold"),
    ("decline_code", "do_not_try_again"): CodeRule(_H, "issuer says never try again"),
    ("decline_code", "duplicate_transaction"): CodeRule(_T, "identical charge just submitted"),
    ("decline_code", "expired_card"): CodeRule(_D, "card expired: needs new expiry or card"),
    ("decline_code", "fraudulent"): CodeRule(_H, "suspected fraud"),
    ("decline_code", "generic_decline"): CodeRule(_U, "unexplained refusal: often money or a hold"),
    ("decline_code", "incorrect_cvc"): CodeRule(_D, "wrong CVC"),
    ("decline_code", "incorrect_number"): CodeRule(_D, "wrong card number"),
    ("decline_code", "incorrect_pin"): CodeRule(_D, "wrong PIN (card present)"),
    ("decline_code", "incorrect_zip"): CodeRule(_D, "postal code mismatch"),
    ("decline_code", "insufficient_funds"): CodeRule(_F, "not enough funds"),
    ("decline_code", "invalid_account"): CodeRule(_H, "card or account invalid"),
    ("decline_code", "invalid_amount"): CodeRule(_H, "amount refused by the issuer; same amount won't pass"),
    ("decline_code", "invalid_cvc"): CodeRule(_D, "invalid CVC"),
    ("decline_code", "invalid_expiry_month"): CodeRule(_D, "invalid expiry month"),
    ("decline_code", "invalid_expiry_year"): CodeRule(_D, "invalid expiry year"),
    ("decline_code", "invalid_number"): CodeRule(_D, "invalid card number"),
    ("decline_code", "invalid_pin"): CodeRule(_D, "invalid PIN (card present)"),
    ("decline_code", "issuer_not_available"): CodeRule(_T, "issuer unreachable"),
    ("decline_code", "lost_card"): CodeRule(_H, "card reported lost"),
    ("decline_code", "merchant_blacklist"): CodeRule(_H, "blocked by the merchant's block list"),
    ("decline_code", "new_account_information_available"): CodeRule(_D, "issuer has new card details"),
    ("decline_code", "no_action_taken"): CodeRule(_U, "unknown reason; customer should call the issuer"),
    ("decline_code", "not_permitted"): CodeRule(_H, "payment not permitted"),
    ("decline_code", "offline_pin_required"): CodeRule(_A, "PIN required (card present)"),
    ("decline_code", "online_or_offline_pin_required"): CodeRule(_A, "PIN required (card present)"),
    ("decline_code", "pickup_card"): CodeRule(_H, "card must be picked up (lost/stolen)"),
    ("decline_code", "pin_try_exceeded"): CodeRule(_H, "PIN tries exceeded"),
    ("decline_code", "processing_error"): CodeRule(_T, "error while processing"),
    ("decline_code", "reenter_transaction"): CodeRule(_T, "issuer asks to re-enter"),
    ("decline_code", "restricted_card"): CodeRule(_H, "card restricted (lost/stolen/blocked)"),
    ("decline_code", "revocation_of_all_authorizations"): CodeRule(_H, "cardholder revoked all recurring payments"),
    ("decline_code", "revocation_of_authorization"): CodeRule(_H, "cardholder revoked this recurring payment"),
    ("decline_code", "security_violation"): CodeRule(_H, "security violation"),
    ("decline_code", "service_not_allowed"): CodeRule(_H, "service not allowed on this card"),
    ("decline_code", "stolen_card"): CodeRule(_H, "card reported stolen"),
    ("decline_code", "stop_payment_order"): CodeRule(_H, "cardholder stopped this payment"),
    ("decline_code", "testmode_decline"): CodeRule(_H, "test card used in live mode"),
    ("decline_code", "transaction_not_allowed"): CodeRule(_H, "transaction type not allowed on this card"),
    ("decline_code", "try_again_later"): CodeRule(_T, "issuer asks to try again later"),
    ("decline_code", "withdrawal_count_limit_exceeded"): CodeRule(_F, "withdrawal/credit limit reached"),
    # --- Stripe charge `failure_code` (error codes, docs.stripe.com/error-codes) ---------
    # `card_declined` carries no meaning of its own: the decline_code decides.
    ("failure_code", "authentication_required"): CodeRule(_A, "authentication required"),
    ("failure_code", "payment_intent_authentication_failure"): CodeRule(_A, "3DS failed or abandoned"),
    ("failure_code", "expired_card"): CodeRule(_D, "card expired"),
    ("failure_code", "incorrect_cvc"): CodeRule(_D, "wrong CVC"),
    ("failure_code", "incorrect_number"): CodeRule(_D, "wrong card number"),
    ("failure_code", "incorrect_zip"): CodeRule(_D, "postal code mismatch"),
    ("failure_code", "invalid_cvc"): CodeRule(_D, "invalid CVC"),
    ("failure_code", "invalid_expiry_month"): CodeRule(_D, "invalid expiry month"),
    ("failure_code", "invalid_expiry_year"): CodeRule(_D, "invalid expiry year"),
    ("failure_code", "invalid_number"): CodeRule(_D, "invalid card number"),
    ("failure_code", "processing_error"): CodeRule(_T, "error while processing"),
    ("failure_code", "card_decline_rate_limit_exceeded"): CodeRule(_T, "Stripe rate limit on this card; wait 24 h"),
    ("failure_code", "insufficient_funds"): CodeRule(_F, "not enough funds (bank debits)"),
    ("failure_code", "account_closed"): CodeRule(_H, "bank account closed"),
    ("failure_code", "no_account"): CodeRule(_H, "bank account does not exist"),
    ("failure_code", "debit_not_authorized"): CodeRule(_H, "customer disputed the debit mandate"),
    ("failure_code", "account_frozen"): CodeRule(_H, "bank account frozen"),
    # --- Stripe `outcome.advice_code` -------------------------------------------------------
    ("advice_code", "do_not_try_again"): CodeRule(_H, "Stripe: do not try again"),
    ("advice_code", "confirm_card_data"): CodeRule(_D, "Stripe: card data must be confirmed"),
    ("advice_code", "try_again_later"): CodeRule(_T, "Stripe: try again later"),
    # --- `outcome.network_advice_code`: Mastercard merchant advice codes (MAC) -----------
    ("network_advice_code", "01"): CodeRule(_D, "MAC 01: new account information available"),
    ("network_advice_code", "02"): CodeRule(_T, "MAC 02: cannot approve now, try again later"),
    ("network_advice_code", "03"): CodeRule(_H, "MAC 03: do not try again"),
    ("network_advice_code", "21"): CodeRule(_H, "MAC 21: payment cancelled by the cardholder"),
    ("network_advice_code", "24"): CodeRule(_F, "MAC 24: retry after 1 hour"),
    ("network_advice_code", "25"): CodeRule(_F, "MAC 25: retry after 24 hours"),
    ("network_advice_code", "26"): CodeRule(_F, "MAC 26: retry after 2 days"),
    ("network_advice_code", "27"): CodeRule(_F, "MAC 27: retry after 4 days"),
    ("network_advice_code", "28"): CodeRule(_F, "MAC 28: retry after 6 days"),
    ("network_advice_code", "29"): CodeRule(_F, "MAC 29: retry after 8 days"),
    ("network_advice_code", "30"): CodeRule(_F, "MAC 30: retry after 10 days"),
    # --- `outcome.network_decline_code`: ISO 8583 response codes (Visa categories) ---------
    ("network_decline_code", "03"): CodeRule(_H, "invalid merchant"),
    ("network_decline_code", "04"): CodeRule(_H, "Visa cat. 1: pick up card"),
    ("network_decline_code", "05"): CodeRule(_U, "do not honour (Visa category 4: reattempts allowed)"),
    ("network_decline_code", "07"): CodeRule(_H, "Visa cat. 1: pick up card, special conditions"),
    ("network_decline_code", "12"): CodeRule(_H, "Visa cat. 1: invalid transaction"),
    ("network_decline_code", "13"): CodeRule(_H, "invalid amount"),
    ("network_decline_code", "14"): CodeRule(_D, "Visa cat. 1: invalid account number"),
    ("network_decline_code", "15"): CodeRule(_D, "Visa cat. 1 until 2025-04-12: no such issuer"),
    ("network_decline_code", "19"): CodeRule(_T, "re-enter transaction"),
    ("network_decline_code", "41"): CodeRule(_H, "Visa cat. 1: lost card"),
    ("network_decline_code", "43"): CodeRule(_H, "Visa cat. 1: stolen card"),
    ("network_decline_code", "46"): CodeRule(_H, "Visa cat. 1: closed account"),
    ("network_decline_code", "51"): CodeRule(_F, "insufficient funds"),
    ("network_decline_code", "54"): CodeRule(_D, "expired card"),
    ("network_decline_code", "55"): CodeRule(_D, "incorrect PIN"),
    ("network_decline_code", "57"): CodeRule(_H, "Visa cat. 1: not permitted to cardholder"),
    ("network_decline_code", "59"): CodeRule(_H, "suspected fraud"),
    ("network_decline_code", "61"): CodeRule(_F, "exceeds amount limit"),
    ("network_decline_code", "62"): CodeRule(_H, "restricted card"),
    ("network_decline_code", "65"): CodeRule(_F, "exceeds withdrawal frequency"),
    ("network_decline_code", "75"): CodeRule(_H, "PIN tries exceeded"),
    ("network_decline_code", "78"): CodeRule(_H, "blocked, first use / no account"),
    ("network_decline_code", "82"): CodeRule(_D, "CVV mismatch"),
    ("network_decline_code", "91"): CodeRule(_T, "issuer or switch inoperative"),
    ("network_decline_code", "93"): CodeRule(_H, "violation of law"),
    ("network_decline_code", "96"): CodeRule(_T, "system malfunction"),
    ("network_decline_code", "1A"): CodeRule(_A, "additional customer authentication required"),
    ("network_decline_code", "N4"): CodeRule(_F, "exceeds issuer withdrawal limit"),
    ("network_decline_code", "N7"): CodeRule(_D, "CVV2 mismatch"),
    ("network_decline_code", "R0"): CodeRule(_H, "Visa cat. 1: stop payment order"),
    ("network_decline_code", "R1"): CodeRule(_H, "Visa cat. 1: revocation of authorisation"),
    ("network_decline_code", "R3"): CodeRule(_H, "Visa cat. 1: revocation of all authorisations"),
}
# fmt: on

# When codes from several fields disagree, the most restrictive class wins: a
# "do not try again" must never be hidden by a softer code on the same attempt.
SEVERITY: tuple[DeclineClass, ...] = (_H, _D, _A, _F, _T, _U)

_NETWORK_FIELDS: frozenset[CodeField] = frozenset({"network_advice_code", "network_decline_code"})


@lru_cache(maxsize=4096)  # pure, and called for every field of every attempt
def normalize_code(field: CodeField, code: str | None) -> str | None:
    """Canonical form used as the table key (Stripe codes lower case, network codes upper)."""
    if code is None:
        return None
    text = code.strip()
    if not text:
        return None
    if field in _NETWORK_FIELDS:
        text = text.upper()
        return text.zfill(2) if text.isdigit() else text
    return text.lower()


def lookup(field: CodeField, code: str | None) -> CodeRule | None:
    """The table row for a code, or None when the code is absent or unknown."""
    key = normalize_code(field, code)
    return None if key is None else DECLINE_TABLE.get((field, key))


@lru_cache(maxsize=4096)  # pure; the engine classifies every attempt of a case each time
def classify(
    decline_code: str | None,
    failure_code: str | None,
    advice_code: str | None,
    network_advice_code: str | None,
    network_decline_code: str | None = None,
) -> DeclineClass:
    """Class of one failed attempt: the most restrictive class among its codes."""
    found: list[DeclineClass] = []
    fields: tuple[tuple[CodeField, str | None], ...] = (
        ("decline_code", decline_code),
        ("failure_code", failure_code),
        ("advice_code", advice_code),
        ("network_advice_code", network_advice_code),
        ("network_decline_code", network_decline_code),
    )
    for field, code in fields:
        rule = lookup(field, code)
        if rule is not None:
            found.append(rule.decline_class)
    if not found:
        return DeclineClass.UNKNOWN
    return min(found, key=SEVERITY.index)
