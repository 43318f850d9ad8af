"""``/console/policies``: the versions, a diff of two, a version's page (its source, the
preview of a made-up failure, the backtest), and activating or splitting it.

Every change calls the same store function as the API and the CLI (``policy.activation``),
which writes the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dunning.console import policy_diff, policy_preview
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
from dunning.db import session_scope
from dunning.http import RowId
from dunning.policy import activation
from dunning.policy.activation import Activation
from dunning.policy.errors import PolicyNotFound, PolicyStoreError
from dunning.policy.versions import StoredPolicy, get_policy_by_id, list_policies

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


DONE = {
    "applied": "Stored as a new version. It is not active yet: preview it, backtest it, then "
    "activate it or give it a share of customers.",
    "activated": "Activated: new cases get this version; open cases keep theirs.",
    "unchanged": "This exact text is already stored as this version: nothing changed.",
    "split": "The A/B split is set.",
    "split_cleared": "The A/B split ended: every new case gets the active policy.",
}


def _stored(policy_id: int) -> tuple[StoredPolicy, Activation]:
    try:
        with session_scope() as session:
            return get_policy_by_id(session, policy_id), activation.current_activation(session)
    except PolicyNotFound:
        raise Refused(404, f"There is no stored policy {policy_id}.") from None


@router.get("/console/policies")
def policies(viewer: Reader, did: str | None = None) -> Response:
    """Every version, the active one and the split."""
    with session_scope() as session:
        act = activation.current_activation(session)
        stored = list_policies(session)
    return page(
        "policies.html",
        viewer=viewer,
        section="policies",
        policies=stored,
        act=act,
        done=DONE.get(did or ""),
    )


@router.get("/console/policies/diff")
def diff(viewer: Reader, a: RowId, b: RowId, all: bool = False) -> Response:
    """Two versions side by side (only the changes and their context, unless ``all``)."""
    left, act = _stored(a)
    right, _ = _stored(b)
    rows = policy_diff.side_by_side(left.source, right.source)
    shown: list[Any] = list(rows) if all else policy_diff.changed_only(rows)
    return page(
        "policy_diff.html",
        viewer=viewer,
        section="policies",
        left=left,
        right=right,
        rows=shown,
        changes=sum(1 for r in rows if r.kind != "same"),
        all=all,
        act=act,
    )


def _version_page(
    request: Request,
    viewer: Viewer,
    policy_id: int,
    *,
    done: str | None = None,
    error: str | None = None,
    backtest: policy_preview.Backtest | None = None,
    status: int = 200,
) -> Response:
    stored, act = _stored(policy_id)
    form = policy_preview.read_form(dict(request.query_params))
    shown = policy_preview.preview(stored.policy, form, settings_of(request))
    return page(
        "policy.html",
        status,
        viewer=viewer,
        section="policies",
        p=stored,
        act=act,
        preview=shown,
        decline_codes=policy_preview.DECLINE_CODES,
        brands=policy_preview.BRANDS,
        done=done,
        error=error,
        backtest=backtest,
        backtest_cases=policy_preview.BACKTEST_CASES,
    )


@router.get("/console/policies/{policy_id}")
def version(request: Request, policy_id: RowId, viewer: Reader, did: str | None = None) -> Response:
    """A version: status, source, the preview of a made-up failure, and the buttons."""
    return _version_page(request, viewer, policy_id, done=DONE.get(did or ""))


def _change(request: Request, viewer: Viewer, policy_id: int, did: str, change: Any) -> Response:
    try:
        with session_scope() as session:
            change(session)
    except PolicyStoreError as exc:
        return _version_page(request, viewer, policy_id, error=str(exc), status=exc.status)
    return RedirectResponse(f"/console/policies/{policy_id}?did={did}", 303)


@router.post("/console/policies/{policy_id}/activate")
def activate(request: Request, policy_id: RowId, viewer: Operator) -> Response:
    """New cases get this version (also how to roll back); any split ends."""
    stored, _ = _stored(policy_id)
    return _change(
        request,
        viewer,
        policy_id,
        "activated",
        lambda s: activation.activate(s, stored.name, stored.version, viewer.actor),
    )


@router.post("/console/policies/{policy_id}/split")
async def split(request: Request, policy_id: RowId, viewer: Operator) -> Response:
    """Give ``percent`` % of customers this version (0 ends the split)."""
    fields = await form_fields(request)
    stored, _ = await run_in_threadpool(_stored, policy_id)
    try:
        percent = int(fields.get("percent", ""))
    except ValueError:
        percent = -1
    if not 0 <= percent <= 100:
        return await run_in_threadpool(
            lambda: _version_page(
                request, viewer, policy_id, error="The share must be 0 to 100 %.", status=422
            )
        )

    def change(session: Any) -> None:
        activation.set_split(session, stored.name, stored.version, percent, viewer.actor)

    did = "split" if percent else "split_cleared"
    return await run_in_threadpool(_change, request, viewer, policy_id, did, change)


@router.post("/console/policies/{policy_id}/backtest")
def run_backtest(request: Request, policy_id: RowId, viewer: Operator) -> Response:
    """This version against the active one and the baselines, on the same made-up cases."""
    stored, act = _stored(policy_id)
    result = policy_preview.backtest(stored.policy, act.active.policy)
    return _version_page(request, viewer, policy_id, backtest=result)
