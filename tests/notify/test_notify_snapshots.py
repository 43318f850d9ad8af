"""Snapshots of the first notice and of the thank-you in each locale: any wording or layout
change shows in review.

Set ``UPDATE_SNAPSHOTS=1`` to (re)write the files; without it a missing snapshot fails.
"""

from __future__ import annotations

import difflib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dunning.brand import Brand
from dunning.notify.render import LOCALES, render_email, sample_context

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _serialise(subject: str, text: str, html: str) -> str:
    return f"Subject: {subject}\n\n===== text =====\n{text}\n===== html =====\n{html}\n"


BRAND = Brand(
    company_name="Acme Cloud",
    support_email="billing@acme.example",
    logo_url="https://cdn.acme.example/logo.png",
)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", ["payment_failed", "payment_recovered"])
def test_snapshot(template: str, locale: str) -> None:
    email = render_email(template, locale, sample_context(template), brand=BRAND)
    actual = _serialise(email.subject, email.text, email.html)
    path = SNAPSHOTS / f"{template}.{locale}.snap"

    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"missing snapshot {path}; run with UPDATE_SNAPSHOTS=1 to create it")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(path),
                tofile="rendered",
            )
        )
        pytest.fail(f"snapshot differs (UPDATE_SNAPSHOTS=1 to accept):\n{diff}")


# The thank-you names the card charged and the next renewal, in the customer's zone:
# (card, renewal sentence, what only the renewal sentence says).
THANKS = {
    "en": (
        "charged to your Visa ending in 4242",
        "Your next renewal is on March 31, 2025.",
        "next renewal",
    ),
    "es": (
        "cobrado en tu tarjeta Visa terminada en 4242",
        "Tu próxima renovación será el 31 de marzo de 2025.",
        "renovación",
    ),
    "zh_CN": ("已从您尾号为 4242 的 Visa 卡扣款", "下次续订日期：2025年3月31日。", "续订"),  # noqa: RUF001
}


@pytest.mark.parametrize("locale", LOCALES)
def test_the_thank_you_says_which_card_and_when_it_renews(locale: str) -> None:
    context = sample_context("payment_recovered")
    context["renewal_date"] = datetime(2025, 4, 1, 2, 0, tzinfo=UTC)  # still March 31 in NY
    email = render_email("payment_recovered", locale, context, brand=BRAND)
    card, renewal, _ = THANKS[locale]
    for part in (email.text, email.html):
        assert card in part and renewal in part


@pytest.mark.parametrize("locale", LOCALES)
def test_a_thank_you_without_card_or_renewal_leaves_them_out(locale: str) -> None:
    context = {
        **sample_context("payment_recovered"),
        "card_brand": None,
        "card_last4": None,
        "renewal_date": None,
    }
    email = render_email("payment_recovered", locale, context, brand=BRAND)
    *_, renewal_word = THANKS[locale]
    for part in (email.text, email.html):
        assert "4242" not in part and "None" not in part and "••••" not in part
        assert renewal_word not in part
