"""Perform one action dispatch like a worker would, and die right after the processor
charged, before anything is recorded: the worst moment for a worker to be killed.

    python -m tests.support.crash_after_charge ACTION_ID DISPATCH NOW API_BASE
"""

from __future__ import annotations

import os
import sys

from dunning import actions, queue
from dunning.processors.stripe_adapter import PayResult, StripeAdapter
from tests.support.sandbox import API_KEY


class DiesAfterCharging(StripeAdapter):
    def pay_invoice(
        self, invoice_id: str, idempotency_key: str, payment_method: str | None = None
    ) -> PayResult:
        super().pay_invoice(invoice_id, idempotency_key, payment_method)
        os._exit(9)


if __name__ == "__main__":
    action_id, dispatch, now, base = sys.argv[1:]
    adapter = DiesAfterCharging(API_KEY, base)
    actions.run_action(adapter, int(action_id), int(dispatch), queue.parse_clock(now))
