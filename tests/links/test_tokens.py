"""Link tokens: signed, expiring, narrow, compact."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from dunning.links import tokens
from dunning.settings import Settings, SettingsError, load_settings

SECRET = b"k" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=14)


def _token(**overrides: object) -> str:
    args: dict[str, object] = {
        "case_id": 42,
        "customer_id": "cus_QZxj5yo4hTgwhj",
        "notification_id": 7,
        "secret": SECRET,
        "expires_at": LATER,
    }
    args.update(overrides)
    return tokens.make_token(**args)  # type: ignore[arg-type]


def test_round_trip_carries_case_customer_notification_and_expiry() -> None:
    claims = tokens.read_token(_token(), secret=SECRET, now=NOW)
    assert claims == tokens.LinkClaims(42, "cus_QZxj5yo4hTgwhj", 7, LATER)


def test_no_notification_round_trips_as_none() -> None:
    claims = tokens.read_token(_token(notification_id=None), secret=SECRET, now=NOW)
    assert claims.notification_id is None


def test_token_is_compact_and_url_safe() -> None:
    token = _token(case_id=2**40, notification_id=2**40)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(token) <= 80


@pytest.mark.parametrize("position", [0, 5, 20, 40, -10, -1])
def test_any_flipped_character_is_refused(position: int) -> None:
    token = _token()
    chars = list(token)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises((tokens.TamperedLink, tokens.MalformedLink)):
        tokens.read_token("".join(chars), secret=SECRET, now=NOW)


def test_a_flipped_payload_byte_is_tampered() -> None:
    raw = bytearray(base64.urlsafe_b64decode(_token() + "=="))
    raw[10] ^= 0x01  # inside the case id
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(forged, secret=SECRET, now=NOW)


def test_another_customer_cannot_be_swapped_in() -> None:
    raw = base64.urlsafe_b64decode(_token() + "==")
    payload, tag = raw[:-16], raw[-16:]
    swapped = payload.replace(b"cus_QZxj5yo4hTgwhj", b"cus_AAAAAAAAAAAAAA") + tag
    forged = base64.urlsafe_b64encode(swapped).rstrip(b"=").decode()
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(forged, secret=SECRET, now=NOW)


def test_expired_at_and_after_its_expiry() -> None:
    token = _token()
    assert tokens.read_token(token, secret=SECRET, now=LATER - timedelta(seconds=1))
    for now in (LATER, LATER + timedelta(days=300)):
        with pytest.raises(tokens.ExpiredLink):
            tokens.read_token(token, secret=SECRET, now=now)


def test_expiry_follows_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """make_link signs for DUNNING_LINK_TTL_DAYS from now; verify reads the real clock."""
    from dunning.settings import get_settings

    monkeypatch.setenv("DUNNING_LINK_TTL_DAYS", "3")
    monkeypatch.setenv("DUNNING_PUBLIC_URL", "https://pay.example.com/")
    get_settings.cache_clear()
    try:
        with time_machine.travel(NOW, tick=False):
            link = tokens.make_link(9, "cus_x", None)
            assert link.startswith("https://pay.example.com/pay/")
            token = link.rsplit("/", 1)[1]
            assert tokens.verify(token).expires_at == NOW + timedelta(days=3)
        with (
            time_machine.travel(NOW + timedelta(days=3, seconds=1), tick=False),
            pytest.raises(tokens.ExpiredLink),
        ):
            tokens.verify(token)
    finally:
        get_settings.cache_clear()


def test_a_forged_expired_token_is_tampered_not_expired() -> None:
    """Expiry is only believed once the signature is: forgers learn nothing."""
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(_token(), secret=b"x" * 32, now=LATER + timedelta(days=1))


def test_wrong_secret_is_tampered() -> None:
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(_token(), secret=b"another secret of 32 bytes......", now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "not a token!", "abc", "A" * 600, _token()[:30], "%%%", _token() + "="],
)
def test_malformed(token: str) -> None:
    with pytest.raises(tokens.MalformedLink):
        tokens.read_token(token, secret=SECRET, now=NOW)


def test_unknown_version_is_malformed() -> None:
    raw = bytearray(base64.urlsafe_b64decode(_token() + "=="))
    raw[0] = 2
    with pytest.raises(tokens.MalformedLink):
        tokens.read_token(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode(), secret=SECRET)


def test_scope_is_one_case_of_one_customer() -> None:
    a = tokens.read_token(_token(case_id=1), secret=SECRET, now=NOW)
    b = tokens.read_token(_token(case_id=2), secret=SECRET, now=NOW)
    c = tokens.read_token(_token(case_id=1, customer_id="cus_other"), secret=SECRET, now=NOW)
    assert (a.case_id, a.customer_id) == (1, "cus_QZxj5yo4hTgwhj")
    assert (b.case_id, c.customer_id) == (2, "cus_other")
    assert len({_token(case_id=1), _token(case_id=2), _token(customer_id="cus_other")}) == 3


def test_bad_claims_are_not_signed() -> None:
    with pytest.raises(ValueError):
        _token(case_id=0)
    with pytest.raises(ValueError):
        _token(customer_id="")


def test_dev_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = tokens.link_secret(settings)
    tokens._stored_secret.cache_clear()
    assert tokens.link_secret(settings) == first and len(first) >= 32
    assert (tmp_path / "data" / tokens.SECRET_FILE).stat().st_mode & 0o077 == 0


def test_configured_secret_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, link_secret="s" * 40)  # type: ignore[arg-type]
    assert tokens.link_secret(settings) == b"s" * 40
    assert not (tmp_path / tokens.SECRET_FILE).exists()


def test_a_live_key_requires_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNNING_STRIPE_API_KEY", "sk_live_abc")
    monkeypatch.setenv("DUNNING_STRIPE_PUBLISHABLE_KEY", "pk_live_abc")
    with pytest.raises(SettingsError, match="DUNNING_LINK_SECRET"):
        load_settings()
    monkeypatch.setenv("DUNNING_LINK_SECRET", "short")
    with pytest.raises(SettingsError, match="at least 32"):
        load_settings()
    monkeypatch.setenv("DUNNING_LINK_SECRET", "z" * 32)
    assert load_settings().link_secret is not None


def test_a_live_key_needs_a_live_publishable_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNNING_STRIPE_API_KEY", "sk_live_abc")
    monkeypatch.setenv("DUNNING_LINK_SECRET", "z" * 32)
    with pytest.raises(SettingsError, match="DUNNING_STRIPE_PUBLISHABLE_KEY"):
        load_settings()
    monkeypatch.setenv("DUNNING_STRIPE_PUBLISHABLE_KEY", "pk_test_abc")
    with pytest.raises(SettingsError, match="pk_live_"):
        load_settings()
    monkeypatch.setenv("DUNNING_UPDATE_MODE", "portal")
    monkeypatch.delenv("DUNNING_STRIPE_PUBLISHABLE_KEY")
    assert load_settings().update_mode == "portal"
