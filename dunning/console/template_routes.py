"""``/console/templates``: every email template in every locale, text and HTML, with
sample data or a chosen case's, rendered by the workers' own renderer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from dunning.console import email_preview
from dunning.console.access import (
    ConsoleRoute,
    Reader,
    Refused,
    settings_of,
)
from dunning.console.pages import page
from dunning.db import session_scope
from dunning.http import RowId
from dunning.notify.render import LOCALES, TEMPLATES

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/console/templates")
def templates(
    request: Request,
    viewer: Reader,
    template: str = "payment_failed",
    locale: str = "",
    case: RowId | None = None,
) -> Response:
    """One template shown in full, and the subject of every template in every locale."""
    if template not in TEMPLATES:
        raise Refused(404, f"There is no email template {template!r}.")
    if locale and locale not in LOCALES:
        raise Refused(404, f"There is no {locale!r} translation; there are {', '.join(LOCALES)}.")
    settings = settings_of(request)
    with session_scope() as session:
        shown = email_preview.show(session, template, locale or None, settings, case)
    subjects = {
        (t, loc): email_preview.show(None, t, loc, settings).email.subject
        for t in TEMPLATES
        for loc in LOCALES
    }
    return page(
        "templates.html",
        viewer=viewer,
        section="templates",
        shown=shown,
        templates=TEMPLATES,
        locales=[(code, email_preview.locale_label(code)) for code in LOCALES],
        locale=locale,
        case_id=case,
        subjects=subjects,
    )
