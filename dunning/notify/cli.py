"""``dunning email``: preview templates, and plan due reminders now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

email_app = typer.Typer(help="Customer emails.", no_args_is_help=True)


@email_app.command("preview")
def preview(
    template: Annotated[str, typer.Argument(help="e.g. payment_failed, renewal_reminder")],
    locale: Annotated[str, typer.Option(help="en, es, zh_CN, ... (falls back to en)")] = "en",
    html: Annotated[bool, typer.Option("--html", help="print the HTML part")] = False,
) -> None:
    """Render TEMPLATE with sample data, as the workers would (no database needed)."""
    from dunning.notify.render import TEMPLATES, UnknownTemplateError
    from dunning.notify.routes import preview as render_preview

    try:
        email = render_preview(template, locale)
    except UnknownTemplateError:
        typer.echo(f"unknown template {template!r}; one of: {', '.join(TEMPLATES)}", err=True)
        raise typer.Exit(2) from None
    if html:
        typer.echo(email.html)
        return
    typer.echo(f"Subject: {email.subject}\nLocale: {email.locale}\n\n{email.text}", nl=False)


@email_app.command("scan")
def scan() -> None:
    """Plan the renewal reminders and card-expiring notices due now (beat does this)."""
    from dunning.notify import reminders
    from dunning.startup import setup

    setup()
    typer.echo(f"{reminders.scan(datetime.now(UTC))} reminders planned")
