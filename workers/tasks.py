"""Thin Celery tasks: each calls one function of the service package."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from dunning import actions, queue
from dunning.alerts import service as alerts
from dunning.card_updater import expiring
from dunning.events import reconcile as reconciler
from dunning.events import service
from dunning.notify import reminders
from dunning.processors.stripe_adapter import ProcessorNotConfigured, StripeAdapter
from dunning.scheduler import sweeper
from dunning.settings import get_settings
from workers.celery_app import app

log = logging.getLogger(__name__)


@app.task(name="workers.tasks.apply_events")
def apply_events(event_ids: list[int]) -> dict[str, int]:
    """Apply stored events, a batch to a transaction (a failing one alone); safe to run twice."""
    return service.handle_events(event_ids, top_up=True)


@app.task(name="workers.tasks.sweep_events")
def sweep_events() -> int:
    """Re-send events not handled after the grace period (lost messages, broker outages)."""
    return service.sweep_unhandled(timedelta(seconds=get_settings().event_grace_seconds))


@app.task(name="workers.tasks.reconcile")
def reconcile() -> int:
    """Feed what the webhooks missed into the same path."""
    try:
        adapter = StripeAdapter.from_settings(get_settings())
    except ProcessorNotConfigured:
        return 0
    return reconciler.reconcile(adapter)


@app.task(name="workers.tasks.sweep_actions")
def sweep_actions() -> int:
    """Claim due scheduled actions and send them to the workers, a chunk per message, as
    many as leave the broker holding ``MAX_WAITING_ACTIONS`` at most (the rest wait for
    the next sweep)."""
    room = queue.MAX_WAITING_ACTIONS - queue.waiting_actions()
    return sweeper.sweep(datetime.now(UTC), max_actions=max(room, 0))


@app.task(name="workers.tasks.run_actions")
def run_actions(claimed: list[list[int]], now: str) -> dict[str, int]:
    """Perform claimed actions at the sweeper's clock ``now``, as one batch.

    One action's error does not stop the others: its lease expires and the sweeper
    dispatches it again."""
    settings = get_settings()
    adapter = StripeAdapter.from_settings(settings) if settings.stripe_api_key else None
    pairs = [(action_id, dispatch) for action_id, dispatch in claimed]
    try:
        results = actions.run_actions(adapter, pairs, queue.parse_clock(now))
    except Exception:  # a batch of one raises what its action raised
        log.exception("actions %s failed", pairs)
        results = ["error"] * len(pairs)
    outcomes: dict[str, int] = {}
    for result in results:
        outcome = result.split(":")[0]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@app.task(name="workers.tasks.scan_reminders")
def scan_reminders() -> int:
    """Plan the card-updater checks of expiring cards (with a processor to ask), then the
    renewal reminders and card-expiring notices whose day has come."""
    now = datetime.now(UTC)
    checks = expiring.scan(now) if get_settings().stripe_api_key else 0
    return checks + reminders.scan(now)


@app.task(name="workers.tasks.check_alerts")
def check_alerts() -> dict[str, list[str]]:
    """Evaluate the alert conditions; tell ops of each new one, once until it clears."""
    result = alerts.check(datetime.now(UTC), get_settings())
    return {"firing": result.firing, "sent": result.sent, "errors": result.errors}
