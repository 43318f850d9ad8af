"""Snapshot of the first notice in each locale: any wording or layout change shows in review.

Set ``UPDATE_SNAPSHOTS=1`` to (re)write the files; without it a missing snapshot fails.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from dunning.brand import Brand
from dunning.notify.render import LOCALES, render_email, sample_context

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _serialise(subject: str, text: str, html: str) -> str:
    return f"Subject: {subject}\n\n===== text =====\n{text}\n===== html =====\n{html}\n"


@pytest.mark.parametrize("locale", LOCALES)
def test_payment_failed_snapshot(locale: str) -> None:
    brand = Brand(
        company_name="Acme Cloud",
        support_email="billing@acme.example",
        logo_url="https://cdn.acme.example/logo.png",
    )
    email = render_email("payment_failed", locale, sample_context("payment_failed"), brand=brand)
    actual = _serialise(email.subject, email.text, email.html)
    path = SNAPSHOTS / f"payment_failed.{locale}.snap"

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
