"""``dunning email preview``, the ops preview API, and the demo's sink and outbox pages."""

from __future__ import annotations

import httpx
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from dunning.cli import app as cli
from dunning.notify.senders import OutgoingEmail, SmtpSender
from dunning.notify.sink import SinkHandler, outbox_dir
from dunning.settings import get_settings
from tests.support.admin import bearer, make_key
from tests.support.servers import WebServer, free_port
from tests.support.smtp import environment


def test_cli_preview_prints_text_or_html() -> None:
    runner = CliRunner()
    text = runner.invoke(cli, ["email", "preview", "payment_failed", "--locale", "es"])
    assert text.exit_code == 0, text.output
    assert text.output.startswith("Subject: ") and "Locale: es" in text.output
    assert "49,00" in text.output
    html = runner.invoke(cli, ["email", "preview", "final_notice", "--locale", "zh_CN", "--html"])
    assert html.exit_code == 0 and html.output.startswith("<!DOCTYPE html>")
    unknown = runner.invoke(cli, ["email", "preview", "nope"])
    assert unknown.exit_code == 2


def test_preview_api_for_ops(web: WebServer) -> None:
    url = f"{web.url}/api/emails/preview/renewal_reminder"
    assert httpx.get(url).status_code == 401
    response = httpx.get(url, params={"locale": "zh_CN"}, headers=bearer(make_key("finance")))
    assert response.status_code == 200
    body = response.json()
    assert body["locale"] == "zh_CN" and body["subject"] and body["text"]
    assert body["html"].startswith("<!DOCTYPE html>")
    fallback = httpx.get(url, params={"locale": "fr"}, headers=bearer(make_key("ops", "o2")))
    assert fallback.json()["locale"] == "en"
    missing = httpx.get(f"{web.url}/api/emails/preview/nope", headers=bearer(make_key("ops")))
    assert missing.status_code == 404


def test_the_demo_sink_keeps_emails_and_the_outbox_shows_them(web: WebServer) -> None:
    assert httpx.get(f"{web.url}/outbox").status_code == 404  # not the demo's sink
    folder = outbox_dir(get_settings().data_dir)
    port = free_port()
    controller = Controller(SinkHandler(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        link = "http://127.0.0.1:8000/pay/abc_DEF-123"
        SmtpSender("127.0.0.1", port).send(
            OutgoingEmail(
                to="grace@example.com",
                sender="billing@acme.example",
                subject="Action needed: <your> payment",
                text=f"Update your card:\n{link}\n",
                html=f'<p><a href="{link}">Update</a></p>',
                message_id="<dunning.7.x@acme.example>",
            )
        )
    finally:
        controller.stop()
    with environment(DUNNING_DEMO="true", DUNNING_EMAIL_SINK="true"):
        listing = httpx.get(f"{web.url}/outbox")
        assert listing.status_code == 200
        assert "Action needed: &lt;your&gt; payment" in listing.text  # escaped
        message_id = listing.text.split('href="/outbox/')[1].split('"')[0]
        page = httpx.get(f"{web.url}/outbox/{message_id}")
        assert page.status_code == 200
        assert f'<a href="{link}" target="_blank"' in page.text  # one click to the page
        assert "srcdoc=" in page.text and "<script" not in page.text
        assert "http" not in page.text.split("<main>")[0]  # no external assets
        assert httpx.get(f"{web.url}/outbox/..%2Fsecret").status_code == 404
