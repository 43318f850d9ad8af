"""SMS, the second channel: templates and segments (pure), the policy's ``channels``,
and delivery of a case's text through the real runner against Postgres and a Twilio
that speaks the Messages API on loopback (``tests/support/twilio.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text as sql_text

from dunning import actions
from dunning.brand import Brand
from dunning.db import session_scope
from dunning.formatting import LOCALES
from dunning.ledger.models import Customer
from dunning.links.tokens import LinkClaims, make_link, verify
from dunning.notify.render import render_sms, sample_context
from dunning.notify.senders import PermanentSendError, TransientSendError
from dunning.notify.sink import list_emails, outbox_dir
from dunning.notify.sms import segments
from dunning.notify.sms.optouts import keyword, normalize_phone, record_reply
from dunning.notify.sms.senders import OutgoingSms, TwilioSender
from dunning.notify.sms.signature import sign
from dunning.policy.activation import DEFAULT_POLICY_FILE, activate
from dunning.policy.models import PolicyError, parse_policy
from dunning.policy.store import apply_policy
from dunning.scheduler import sweeper
from dunning.settings import Settings
from dunning.templates import TEMPLATES_DIR
from tests.support.cases import case_row, fail_invoice
from tests.support.ledger import rows
from tests.support.servers import WebServer
from tests.support.smtp import environment
from tests.support.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio, fake_twilio

NEW_YORK = ZoneInfo("America/New_York")
TEXTED = ("payment_failed", "payment_reminder", "final_notice", "action_required")
# A realistic link: a short billing host and a Stripe customer id (the token is ~75 chars).
PUBLIC_URL = "https://pay.example.com"
PHONE = "+12125550147"


# --- templates and segments (pure) -----------------------------------------------------


def test_segments_follow_gsm7_and_ucs2_limits() -> None:
    assert segments.count("a" * 160) == segments.Segments("GSM-7", 160, 1)
    assert segments.count("a" * 161).parts == 2
    assert segments.count("a" * 306).parts == 2 and segments.count("a" * 307).parts == 3
    assert segments.count("€" * 80) == segments.Segments("GSM-7", 160, 1)  # escape + char
    assert segments.count("é" * 160).encoding == "GSM-7"
    assert segments.count("á").encoding == "UCS-2"  # not in the GSM-7 alphabet
    assert segments.count("付" * 70).parts == 1 and segments.count("付" * 71).parts == 2
    assert segments.count("付" * 134).parts == 2 and segments.count("付" * 135).parts == 3
    assert segments.count("49,00\u00a0US$").encoding == "UCS-2"  # hence render_sms's tidy


def _link() -> str:
    settings = Settings(public_url=PUBLIC_URL, link_secret=SecretStr("s" * 40))
    return make_link(123456, "cus_9s6XKzkNRiz8i3", 987654, settings=settings)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_has_its_translation_the_link_and_fits_two_segments(
    locale: str, capsys: pytest.CaptureFixture[str]
) -> None:
    link = _link()
    brand = Brand(company_name="Acme Cloud", support_email="billing@acme.example")
    report: list[str] = []
    for template in TEXTED:
        assert (Path(TEMPLATES_DIR) / locale / template / "sms.txt").is_file()
        end_actions = ("cancel", "pause", "mark_unpaid") if template == "final_notice" else ("",)
        for end_action in end_actions:
            context: dict[str, Any] = {**sample_context(template), "update_url": link}
            if end_action:
                context["end_action"] = end_action
            sms = render_sms(template, locale, context, brand=brand)
            assert sms.locale == locale and "\n" not in sms.text
            assert link in sms.text and sms.text.startswith("Acme Cloud")
            counted = segments.count(sms.text)
            report.append(f"{locale} {template} {end_action}: {counted}")
            assert counted.parts <= 2, (sms.text, counted)
            # Latin-script texts stay in GSM-7 (an accent like á would double the cost).
            assert counted.encoding == ("UCS-2" if locale == "zh_CN" else "GSM-7"), sms.text
    with capsys.disabled():
        print(f"\nlink of {len(link)} chars:", *report, sep="\n  ")


def test_a_policy_step_names_its_channels_and_a_wrong_one_is_refused() -> None:
    text = DEFAULT_POLICY_FILE.read_text()
    assert parse_policy(text).email_steps[0].channels == ("email",)
    both = _texting_policy()
    assert parse_policy(both).email_steps[0].channels == ("email", "sms")
    for bad in ('["fax"]', "[]", '["sms", "sms"]', '"sms"'):
        wrong = text.replace(
            'template = "payment_failed"\n', f'template = "payment_failed"\nchannels = {bad}\n'
        )
        with pytest.raises(PolicyError) as refused:
            parse_policy(wrong)
        assert "email_steps.0.channels" in str(refused.value)


def test_replies_and_numbers() -> None:
    assert [keyword(w) for w in ("STOP", " stop. ", "Unsubscribe", "quit", "StopAll")] == [True] * 5
    assert [keyword(w) for w in ("START", "yes", "unstop!")] == [False] * 3
    assert [keyword(w) for w in ("don't stop", "help", "")] == [None] * 3
    assert normalize_phone("+1 (212) 555-0147") == PHONE
    assert normalize_phone("0044 7700 900123") == "+447700900123"
    assert normalize_phone("212-555-0147") is None  # no country code: not guessed
    assert normalize_phone(None) is None


def test_signature_matches_twilios_documented_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


# --- the sender against the fake Twilio ------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


def test_twilio_sender_posts_the_form_with_basic_auth(twilio: FakeTwilio) -> None:
    sender = TwilioSender(twilio.url, ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER)
    sid = sender.send(OutgoingSms(PHONE, "hello"))
    [message] = twilio.messages
    assert sid == message["sid"] and sid.startswith("SM")
    assert {k: message[k] for k in ("To", "From", "Body")} == {
        "To": PHONE,
        "From": FROM_NUMBER,
        "Body": "hello",
    }
    service = TwilioSender(twilio.url, ACCOUNT_SID, AUTH_TOKEN, "MG" + "0" * 32)
    service.send(OutgoingSms(PHONE, "via a messaging service"))
    assert twilio.messages[-1]["MessagingServiceSid"] == "MG" + "0" * 32
    twilio.fail["+15550000001"] = (503, None)
    twilio.fail["+15550000002"] = (400, 21610)
    with pytest.raises(TransientSendError):
        sender.send(OutgoingSms("+15550000001", "x"))
    with pytest.raises(PermanentSendError, match="21610"):
        sender.send(OutgoingSms("+15550000002", "x"))
    with pytest.raises(PermanentSendError, match="20003"):
        TwilioSender(twilio.url, ACCOUNT_SID, "wrong", FROM_NUMBER).send(OutgoingSms(PHONE, "x"))
    with pytest.raises(TransientSendError):  # nothing listens there
        TwilioSender("http://127.0.0.1:9", ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, 1).send(
            OutgoingSms(PHONE, "x")
        )
    assert len(twilio.messages) == 2


# --- a case's text through the runner ---------------------------------------------------


def _texting_policy() -> str:
    text = DEFAULT_POLICY_FILE.read_text()
    text = text.replace('name = "default"', 'name = "texting"').replace(
        "version = 2", "version = 1"
    )
    return text.replace(
        'template = "payment_failed"\n',
        'template = "payment_failed"\nchannels = ["email", "sms"]\n',
    )


def _open_texting_case(invoice: str, phone: str | None = "+1 (212) 555-0147") -> dict[str, Any]:
    with session_scope() as session:
        apply_policy(session, _texting_policy(), "tests")
        activate(session, "texting", 1, "tests")
        session.add(
            Customer(
                id="cus_ops", email="ops@example.com", name="Ops", phone=phone,
                time_zone="America/New_York",
            )
        )  # fmt: skip
    fail_invoice(invoice, created=int(time.time()))
    return case_row(invoice)


def _action(case_id: int, step: str = "0") -> dict[str, Any]:
    [action] = rows(
        "SELECT id, status, due_at, result, payload FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:sms:{step}",
    )
    return action


def _texts(case_id: int) -> list[dict[str, Any]]:
    return rows(
        "SELECT id, dedupe_key, channel, recipient, status, error, provider, provider_id,"
        " details, template FROM notifications WHERE case_id = :c AND channel = 'sms'",
        c=case_id,
    )


def _run(action_id: int, now: datetime) -> str:
    with session_scope() as session:
        dispatch = dict(sweeper.claim(session, now, 100))[action_id]
    return actions.run_action(None, action_id, dispatch, now)


def _night_after(moment: datetime) -> datetime:
    """03:00 in New York, after ``moment``: outside the allowed hours."""
    local = (moment + timedelta(days=1)).astimezone(NEW_YORK)
    return local.replace(hour=3, minute=0, second=0, microsecond=0)


def test_a_text_goes_out_once_inside_the_allowed_hours(clean_db: None, twilio: FakeTwilio) -> None:
    case = _open_texting_case("in_sms")
    planned = {r["dedupe_key"] for r in rows(
        "SELECT dedupe_key FROM scheduled_actions WHERE case_id = :c AND dedupe_key LIKE '%:sms:%'",
        c=case["id"],
    )}  # fmt: skip
    # The texted step, and the final notice (a policy that texts, texts the last warning).
    assert planned == {f"case:{case['id']}:sms:0", f"case:{case['id']}:sms:final"}
    action = _action(case["id"])
    assert action["payload"]["channel"] == "sms"

    night = _night_after(action["due_at"])
    assert _run(action["id"], night) == "rescheduled: outside allowed hours"
    assert twilio.requests == [] and _texts(case["id"]) == []
    morning = _action(case["id"])["due_at"]
    assert morning.astimezone(NEW_YORK).hour == 8

    assert _run(action["id"], morning) == "sent"
    # Dispatched again (a lease that expired after the send): the row says sent already.
    with session_scope() as session:
        session.execute(
            sql_text(
                "UPDATE scheduled_actions SET status = 'claimed', attempts = attempts + 1"
                " WHERE id = :a"
            ),
            {"a": action["id"]},
        )
    assert actions.run_action(None, action["id"], 3, morning) == "skipped: already sent"
    [message] = twilio.messages
    assert len(twilio.requests) == 1
    assert message["To"] == PHONE and message["From"] == FROM_NUMBER
    [text] = _texts(case["id"])
    assert text["status"] == "sent" and text["provider"] == "twilio"
    assert text["provider_id"] == message["sid"] and text["recipient"] == PHONE
    assert text["template"] == "payment_failed" and 1 <= text["details"]["segments"] <= 2
    token = message["Body"].rsplit("/pay/", 1)[1]
    claims = verify(token)
    assert isinstance(claims, LinkClaims)  # a case link, not a customer link
    assert (claims.case_id, claims.notification_id) == (case["id"], text["id"])


def test_an_opted_out_number_is_never_texted(clean_db: None, twilio: FakeTwilio) -> None:
    case = _open_texting_case("in_stop")
    with session_scope() as session:
        record_reply(session, PHONE, True, "SM_reply", datetime.now(NEW_YORK))
    action = _action(case["id"])
    outcome = _run(action["id"], action["due_at"])
    assert outcome == f"skipped: {PHONE} opted out of SMS (replied STOP)"
    [text] = _texts(case["id"])
    assert text["status"] == "skipped" and "opted out" in text["error"]
    assert twilio.requests == []
    assert _action(case["id"])["status"] == "done"


def test_without_a_phone_or_sms_settings_the_text_is_recorded_skipped(clean_db: None) -> None:
    case = _open_texting_case("in_nophone", phone=None)
    action = _action(case["id"])
    # No Twilio settings (and no demo sink): skipped, naming what to set.
    assert _run(action["id"], action["due_at"]).startswith("skipped: SMS not configured")
    [text] = _texts(case["id"])
    assert text["status"] == "skipped" and "DUNNING_SMS_ACCOUNT_SID" in text["error"]

    final = _action(case["id"], "final")
    with fake_twilio() as twilio:
        assert "no phone number" in _run(final["id"], final["due_at"])
        assert twilio.requests == []
    assert {t["status"] for t in _texts(case["id"])} == {"skipped"}


def test_in_the_demo_texts_land_in_the_outbox(web: WebServer, tmp_path: Path) -> None:
    case = _open_texting_case("in_demo")
    action = _action(case["id"])
    demo = {"DUNNING_DEMO": "true", "DUNNING_EMAIL_SINK": "true", "DUNNING_DATA_DIR": str(tmp_path)}
    with environment(**demo):
        assert _run(action["id"], action["due_at"]) == "sent"
        listing = httpx.get(f"{web.url}/outbox")
        message_id = listing.text.split('href="/outbox/')[1].split('"')[0]
        page = httpx.get(f"{web.url}/outbox/{message_id}")
    [stored] = list_emails(outbox_dir(tmp_path))
    assert stored.channel == "sms" and stored.to == PHONE and "/pay/" in stored.text
    [text] = _texts(case["id"])
    assert text["provider"] == "outbox" and text["provider_id"] == stored.id == message_id
    assert "<td>sms</td>" in listing.text and "Acme Cloud: your $10.00 payment" in listing.text
    assert "Text message" in page.text and "srcdoc=" not in page.text
    link = stored.text.split()[-1]
    assert f'<a href="{link}" target="_blank"' in page.text  # one click to the page


def test_a_number_twilio_reports_unsubscribed_is_remembered_as_opted_out(
    clean_db: None, twilio: FakeTwilio
) -> None:
    case = _open_texting_case("in_21610")
    twilio.fail[PHONE] = (400, 21610)  # the customer replied STOP to Twilio itself
    first = _action(case["id"])
    assert _run(first["id"], first["due_at"]).startswith("skipped: opted out at the provider")
    assert rows("SELECT opted_out FROM sms_opt_outs WHERE phone = :p", p=PHONE) == [
        {"opted_out": True}
    ]
    final = _action(case["id"], "final")
    assert "opted out of SMS" in _run(final["id"], final["due_at"])
    assert len(twilio.requests) == 1  # the final notice was not even tried
    assert {t["status"] for t in _texts(case["id"])} == {"skipped"}
