"""``/console/policies/new``: write a new policy version in the browser.

The text goes through ``policy.store.apply_policy``, the function behind ``dunning policy
apply`` and ``POST /api/policies``, so the messages are the CLI's; each is shown beside
the line it is about (``policy_lines``). "Check" validates and previews without storing.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dunning.console import policy_lines, policy_preview
from dunning.console.access import (
    ConsoleRoute,
    Operator,
    Reader,
    Refused,
    Viewer,
    form_fields,
    settings_of,
)
from dunning.console.pages import page
from dunning.db import session_factory, session_scope
from dunning.http import RowId
from dunning.policy import activation, store
from dunning.policy.errors import PolicyNotFound, PolicyStoreError
from dunning.policy.models import PolicyError
from dunning.policy.versions import get_policy_by_id, latest_version

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


ORIGIN = "(console editor)"
MAX_POLICY_CHARS = 256 * 1024
_VERSION = re.compile(r"^(version\s*=\s*)(\d+)", re.MULTILINE)


def _starting_text(from_id: int | None) -> tuple[str, str]:
    """The text to start from (a stored version, else the active one) with its version
    bumped past the latest of its name, and the label it came from."""
    with session_scope() as session:
        try:
            base = (
                get_policy_by_id(session, from_id)
                if from_id
                else activation.current_activation(session).active
            )
        except PolicyNotFound:
            raise Refused(404, f"There is no stored policy {from_id}.") from None
        latest = latest_version(session, base.name)
    text = _VERSION.sub(lambda m: f"{m.group(1)}{latest + 1}", base.source, count=1)
    return text, base.label


def _editor(
    viewer: Viewer,
    text: str,
    *,
    origin: str | None = None,
    problems: list[policy_lines.Problem] | None = None,
    error: str | None = None,
    preview: policy_preview.Preview | None = None,
    checked: bool = False,
    status: int = 200,
) -> Response:
    problems = problems or []
    return page(
        "policy_editor.html",
        status,
        viewer=viewer,
        section="policies",
        text=text,
        origin=origin,
        problems=problems,
        lines=policy_lines.annotated(text, problems) if problems else [],
        error=error,
        preview=preview,
        checked=checked,
    )


@router.get("/console/policies/new")
def new_version(viewer: Reader, source: RowId | None = None) -> Response:
    """The editor, starting from a stored version (default: the active one)."""
    if not viewer.can_act:
        raise Refused(403, "Writing a policy needs an ops key; finance keys read the console.")
    text, label = _starting_text(source)
    return _editor(viewer, text, origin=label)


@router.post("/console/policies/new")
async def submit(request: Request, viewer: Operator) -> Response:
    """Check (validate and preview, nothing stored) or apply (store a new version)."""
    fields = await form_fields(request)
    text = fields.get("source", "").replace("\r\n", "\n")
    if len(text) > MAX_POLICY_CHARS:
        raise Refused(413, f"A policy is at most {MAX_POLICY_CHARS // 1024} KiB.")
    if fields.get("intent") == "apply":
        return await run_in_threadpool(_apply, viewer, text)
    return await run_in_threadpool(_check, request, viewer, text)


def _check(request: Request, viewer: Viewer, text: str) -> Response:
    """What applying would answer, in a transaction rolled back: the same messages."""
    session = session_factory()()
    try:
        policy = store.apply_policy(session, text, viewer.actor, origin=ORIGIN).policy
    except PolicyError as exc:
        problems = policy_lines.locate(text, exc.problems)
        return _editor(viewer, text, problems=problems, status=422)
    except PolicyStoreError as exc:
        return _editor(viewer, text, error=str(exc), status=exc.status)
    finally:
        session.rollback()
        session.close()
    shown = policy_preview.preview(policy, policy_preview.PreviewForm(), settings_of(request))
    return _editor(viewer, text, preview=shown, checked=True)


def _apply(viewer: Viewer, text: str) -> Response:
    try:
        with session_scope() as session:
            stored = store.apply_policy(session, text, viewer.actor, origin=ORIGIN)
    except PolicyError as exc:
        problems = policy_lines.locate(text, exc.problems)
        return _editor(viewer, text, problems=problems, status=422)
    except PolicyStoreError as exc:
        return _editor(viewer, text, error=str(exc), status=exc.status)
    did = "applied" if stored.created else "unchanged"
    return RedirectResponse(f"/console/policies/{stored.id}?did={did}", 303)
