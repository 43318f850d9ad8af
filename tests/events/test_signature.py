"""The signature check agrees with Stripe's own SDK and refuses everything else."""

from __future__ import annotations

import time

import pytest
import stripe

from dunning.events.signature import SignatureError, sign, verify

BODY = b'{"id": "evt_1", "type": "invoice.paid"}'


def test_accepts_a_header_made_by_the_stripe_sdk_scheme() -> None:
    t = int(time.time())
    mac = stripe.WebhookSignature._compute_signature(f"{t}.{BODY.decode()}", "whsec_a")
    verify(BODY, f"t={t},v1={mac}", ["whsec_a"])


def test_our_signature_is_accepted_by_the_stripe_sdk() -> None:
    header = sign(BODY, "whsec_a")
    assert stripe.WebhookSignature.verify_header(BODY.decode(), header, "whsec_a", 300)


def test_any_of_several_secrets_during_rotation() -> None:
    verify(BODY, sign(BODY, "whsec_old"), ["whsec_new", "whsec_old"])


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=00", f"t={int(time.time())}", "v1=deadbeef"],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify(BODY, header, ["whsec_a"])


def test_wrong_secret_and_tampered_body_are_refused() -> None:
    with pytest.raises(SignatureError):
        verify(BODY, sign(BODY, "whsec_other"), ["whsec_a"])
    with pytest.raises(SignatureError):
        verify(BODY + b" ", sign(BODY, "whsec_a"), ["whsec_a"])


def test_timestamps_outside_the_tolerance_are_refused() -> None:
    stale = int(time.time()) - 301
    with pytest.raises(SignatureError, match="tolerance"):
        verify(BODY, sign(BODY, "whsec_a", stale), ["whsec_a"], tolerance=300)
    verify(BODY, sign(BODY, "whsec_a", stale + 2), ["whsec_a"], tolerance=300)


def test_each_rotation_secret_is_checked_by_the_stripe_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    sdk_verify = stripe.WebhookSignature.verify_header

    def spy(payload: str, header: str, secret: str, tolerance: int | None = None) -> bool:
        checked.append(secret)
        return bool(sdk_verify(payload, header, secret, tolerance))

    monkeypatch.setattr(stripe.WebhookSignature, "verify_header", spy)
    verify(BODY, sign(BODY, "whsec_old"), ["whsec_new", "whsec_old"])
    assert checked == ["whsec_new", "whsec_old"]


@pytest.mark.parametrize("extra", ["t=1,v1=\u00e9", "v1=\u00ff\u00fe", "\x80"])
def test_non_ascii_headers_are_refused_not_crashed_on(extra: str) -> None:
    for header in (extra, f"{sign(BODY, 'whsec_a')},{extra}"):
        with pytest.raises(SignatureError, match="ASCII"):
            verify(BODY, header, ["whsec_a"])


def test_timestamps_too_far_in_the_future_are_refused() -> None:
    ahead = int(time.time()) + 301
    with pytest.raises(SignatureError, match="tolerance"):
        verify(BODY, sign(BODY, "whsec_a", ahead), ["whsec_a"], tolerance=300)
    verify(BODY, sign(BODY, "whsec_a", ahead - 5), ["whsec_a"], tolerance=300)


def test_a_body_that_is_not_utf8_is_refused() -> None:
    body = b'{"id": "evt_\xff"}'
    with pytest.raises(SignatureError, match="UTF-8"):
        verify(body, sign(body, "whsec_a"), ["whsec_a"])
