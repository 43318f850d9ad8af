"""``/console/cases``: the queue, a case's page, and the ops buttons.

Each button posts a form (CSRF token, ``ops`` role) that calls the same function of
``cases.ops`` as the API and the CLI, so it is audited the same way; the browser is
then sent back to the case page (post/redirect/get), which says what was done.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from dunning.cases import ops
from dunning.cases.models import DunningCase
from dunning.console import case_search, case_view
from dunning.console.access import ConsoleRoute, Operator, Reader, Refused, Viewer
from dunning.console.pages import page
from dunning.db import session_scope
from dunning.http import RowId
from dunning.policy.versions import list_policies

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


DONE = {
    "retry-now": "Retry scheduled: the card is charged within a minute.",
    "pause": "Paused: no retries, emails or end action until you resume.",
    "resume": "Resumed: the policy planned what comes next.",
    "write-off": "Written off: the invoice is being marked uncollectible.",
}


@router.get("/console")
def home(viewer: Reader) -> Response:
    return RedirectResponse("/console/cases", 303)


@router.get("/console/cases")
def queue(request: Request, viewer: Reader) -> Response:
    """Search, filter, sort and page through the cases."""
    f = case_search.parse(dict(request.query_params))
    with session_scope() as session:
        result = case_search.search(session, f)
        policies = [(p.id, p.label) for p in list_policies(session)]
        labels = dict(policies)
    return page(
        "cases.html",
        viewer=viewer,
        section="cases",
        f=f,
        result=result,
        policies=policies,
        policy_labels=labels,
        states=case_search.STATES,
        classes=case_search.DECLINE_CLASSES,
        sorts=case_search.SORTS,
        now=datetime.now(UTC),
    )


def _case_page(
    viewer: Viewer,
    case_id: int,
    *,
    done: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    with session_scope() as session:
        case = session.get(DunningCase, case_id)
        if case is None:
            raise Refused(404, f"There is no case {case_id}.")
        view = case_view.build(session, case)
    if viewer.can_act:
        view.verdicts = case_view.verdicts(view.case)
    return page(
        "case.html",
        status,
        viewer=viewer,
        section="cases",
        v=view,
        done=done,
        error=error,
        now=datetime.now(UTC),
    )


@router.get("/console/cases/{case_id}")
def case_page(case_id: RowId, viewer: Reader, did: str | None = None) -> Response:
    """A case: customer, invoice, card, timeline, what comes next, and the buttons."""
    return _case_page(viewer, case_id, done=DONE.get(did or ""))


Change = Callable[[Session, int, Viewer, datetime], object]
ACTIONS: dict[str, Change] = {
    "retry-now": lambda s, c, v, now: ops.retry_now(s, c, v.actor, now),
    "pause": lambda s, c, v, now: ops.pause(s, c, v.actor),
    "resume": lambda s, c, v, now: ops.resume(s, c, v.actor, now),
    "write-off": lambda s, c, v, now: ops.write_off(s, c, v.actor, now),
}


@router.post("/console/cases/{case_id}/{action}")
def act(
    case_id: RowId,
    action: Annotated[str, Path(pattern="^(retry-now|pause|resume|write-off)$")],
    viewer: Operator,
) -> Response:
    """Retry now, pause, resume or write off (audited by ``cases.ops``)."""
    change = ACTIONS[action]
    now = datetime.now(UTC)
    try:
        with session_scope() as session:
            change(session, case_id, viewer, now)
    except ops.CaseActionRefused as exc:
        if exc.status == 404:
            raise Refused(404, str(exc)) from None
        return _case_page(viewer, case_id, error=f"Refused: {exc}.", status=exc.status)
    return RedirectResponse(f"/console/cases/{case_id}?did={action}", 303)
