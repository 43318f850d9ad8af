"""The update-payment link an email carries: always the signed self-serve page.

A case email links to its case (``dunning.links.tokens.make_link``: pay now); an email
without a case (renewal reminder, card-expiring notice) links to the customer's page
(``make_customer_link``: the next renewal, the card on file, save a card). Both are
tagged with the notification id, so the page can tell which email brought the
customer and, for a customer link, which subscription the email was about.
"""

from __future__ import annotations

from dunning.links.tokens import make_customer_link, make_link
from dunning.settings import Settings


class NoLinkTarget(Exception):
    """No page to send the customer to (an email without a customer)."""


def update_url(
    case_id: int | None, customer_id: str, notification_id: int | None, settings: Settings
) -> str:
    """The link for the email's button (and the bare URL in its text part)."""
    if not customer_id:
        raise NoLinkTarget("an email without a customer has no update link")
    if case_id is not None:
        return make_link(case_id, customer_id, notification_id, settings=settings)
    return make_customer_link(customer_id, notification_id, settings=settings)
