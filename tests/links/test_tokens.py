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


def _customer_token(**overrides: object) -> str:
    args: dict[str, object] = {
        "customer_id": "cus_QZxj5yo4hTgwhj",
        "notification_id": 7,
        "secret": SECRET,
        "expires_at": LATER,
    }
    args.update(overrides)
    return tokens.make_customer_token(**args)  # type: ignore[arg-type]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


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


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unknown_version_is_malformed(version: int) -> None:
    raw = bytearray(base64.urlsafe_b64decode(_token() + "=="))
    raw[0] = version
    with pytest.raises(tokens.MalformedLink, match="version"):
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


# Customer links (no case): renewal reminders and card-expiring notices.

# Made by the version 1 code (before customer links) with SECRET, expiring at LATER:
# case 42 of cus_QZxj5yo4hTgwhj, from notification 7 / from no notification.
V1_TOKEN = "AWm2n0AAAAAAAAAAKgAAAAAAAAAHY3VzX1FaeGo1eW80aFRnd2hqEBpULORhFCKaLdkOXcAYvg"
V1_TOKEN_NO_NOTIFICATION = (
    "AWm2n0AAAAAAAAAAKgAAAAAAAAAAY3VzX1FaeGo1eW80aFRnd2hq4u6tb-e00kNntmG7PeRoCg"
)


def test_customer_link_round_trip() -> None:
    claims = tokens.read_token(_customer_token(), secret=SECRET, now=NOW)
    assert claims == tokens.CustomerLinkClaims("cus_QZxj5yo4hTgwhj", 7, LATER)
    bare = tokens.read_token(_customer_token(notification_id=None), secret=SECRET, now=NOW)
    assert bare == tokens.CustomerLinkClaims("cus_QZxj5yo4hTgwhj", None, LATER)


def test_customer_link_is_compact_url_safe_and_versioned() -> None:
    token = _customer_token(notification_id=2**40)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token) and len(token) <= 80
    raw = _raw(token)
    assert (raw[0], raw[1]) == (tokens.VERSION, tokens.SCOPE_CUSTOMER)
    assert (_raw(_token())[0], _raw(_token())[1]) == (tokens.VERSION, tokens.SCOPE_CASE)


@pytest.mark.parametrize("position", [0, 1, 5, 20, 40, -10, -1])
def test_a_flipped_character_of_a_customer_link_is_refused(position: int) -> None:
    chars = list(_customer_token())
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises((tokens.TamperedLink, tokens.MalformedLink)):
        tokens.read_token("".join(chars), secret=SECRET, now=NOW)


def test_another_customer_cannot_be_swapped_into_a_customer_link() -> None:
    raw = bytes(_raw(_customer_token()))
    swapped = raw.replace(b"cus_QZxj5yo4hTgwhj", b"cus_AAAAAAAAAAAAAA")
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(_b64(swapped), secret=SECRET, now=NOW)


def test_customer_link_expires_and_a_forged_one_is_tampered_not_expired() -> None:
    token = _customer_token()
    assert tokens.read_token(token, secret=SECRET, now=LATER - timedelta(seconds=1))
    with pytest.raises(tokens.ExpiredLink):
        tokens.read_token(token, secret=SECRET, now=LATER)
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(token, secret=b"x" * 32, now=LATER + timedelta(days=1))


def test_a_case_link_cannot_be_replayed_as_a_customer_link() -> None:
    """The scope byte is signed: flipping it (and zeroing the case id, as a customer link
    has none) breaks the signature; the case link itself only ever reads as a case."""
    case_token = _token()
    assert isinstance(tokens.read_token(case_token, secret=SECRET, now=NOW), tokens.LinkClaims)
    raw = _raw(case_token)
    raw[1] = tokens.SCOPE_CUSTOMER
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(_b64(bytes(raw)), secret=SECRET, now=NOW)
    raw[6:14] = bytes(8)  # no case id either
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(_b64(bytes(raw)), secret=SECRET, now=NOW)


def test_a_customer_link_cannot_be_replayed_as_a_case_link() -> None:
    customer_token = _customer_token()
    claims = tokens.read_token(customer_token, secret=SECRET, now=NOW)
    assert isinstance(claims, tokens.CustomerLinkClaims) and not hasattr(claims, "case_id")
    raw = _raw(customer_token)
    raw[1] = tokens.SCOPE_CASE
    raw[6:14] = (42).to_bytes(8, "big")  # and name a case
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(_b64(bytes(raw)), secret=SECRET, now=NOW)
    # Dressed as a version 1 token (always a case): still refused.
    legacy = _raw(customer_token)
    legacy[0] = tokens.LEGACY_VERSION
    with pytest.raises((tokens.TamperedLink, tokens.MalformedLink)):
        tokens.read_token(_b64(bytes(legacy)), secret=SECRET, now=NOW)


def test_a_signed_payload_with_mismatched_scope_and_case_is_malformed() -> None:
    """Defence in depth: even a correctly signed token whose scope and case id disagree
    (which the service never makes) is refused."""
    import struct

    for scope, case_id in ((tokens.SCOPE_CUSTOMER, 42), (tokens.SCOPE_CASE, 0), (9, 1)):
        header = struct.pack(">BBIQQ", tokens.VERSION, scope, int(LATER.timestamp()), case_id, 0)
        payload = header + b"cus_x"
        token = _b64(payload + tokens._tag(SECRET, payload))
        with pytest.raises(tokens.MalformedLink):
            tokens.read_token(token, secret=SECRET, now=NOW)


def test_version_1_case_links_still_work() -> None:
    """Links in emails sent before customer links existed keep opening their case."""
    assert tokens.read_token(V1_TOKEN, secret=SECRET, now=NOW) == tokens.LinkClaims(
        42, "cus_QZxj5yo4hTgwhj", 7, LATER
    )
    assert tokens.read_token(V1_TOKEN_NO_NOTIFICATION, secret=SECRET, now=NOW) == (
        tokens.LinkClaims(42, "cus_QZxj5yo4hTgwhj", None, LATER)
    )
    with pytest.raises(tokens.ExpiredLink):
        tokens.read_token(V1_TOKEN, secret=SECRET, now=LATER)
    flipped = _raw(V1_TOKEN)
    flipped[10] ^= 1
    with pytest.raises(tokens.TamperedLink):
        tokens.read_token(_b64(bytes(flipped)), secret=SECRET, now=NOW)


def test_make_customer_link_signs_for_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    from dunning.settings import get_settings

    monkeypatch.setenv("DUNNING_LINK_TTL_DAYS", "5")
    monkeypatch.setenv("DUNNING_PUBLIC_URL", "https://pay.example.com")
    get_settings.cache_clear()
    try:
        with time_machine.travel(NOW, tick=False):
            link = tokens.make_customer_link("cus_x", 12)
            assert link.startswith("https://pay.example.com/pay/")
            claims = tokens.verify(link.rsplit("/", 1)[1])
            assert claims == tokens.CustomerLinkClaims("cus_x", 12, NOW + timedelta(days=5))
            case = tokens.verify(tokens.make_link(9, "cus_x", 12).rsplit("/", 1)[1])
            assert case == tokens.LinkClaims(9, "cus_x", 12, NOW + timedelta(days=5))
    finally:
        get_settings.cache_clear()


def test_bad_customer_claims_are_not_signed() -> None:
    with pytest.raises(ValueError):
        _customer_token(customer_id="")
    with pytest.raises(ValueError):
        _customer_token(customer_id="c" * 256)
    with pytest.raises(ValueError):
        _customer_token(notification_id=0)
