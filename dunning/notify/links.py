"""The update-payment link an email carries.

A case email links to the signed self-serve page of that case
(``dunning.links.tokens.make_link``), tagged with the notification id so the page
can tell which email brought the customer. Renewal and card-expiring emails have no
case, and the self-serve page serves cases only: they link to ``DUNNING_BILLING_URL``
(the account's own billing page), and are not planned while it is unset.
"""

from __future__ import annotations

from dunning.settings import Settings


class NoLinkTarget(Exception):
    """No page to send a customer without a case to."""


def update_url(
    case_id: int | None, customer_id: str, notification_id: int | None, settings: Settings
) -> str:
    """The link for the email's button (and the bare URL in its text part)."""
    if case_id is not None:
        from dunning.links.tokens import make_link  # the links feature owns the token

        return make_link(case_id, customer_id, notification_id)
    if settings.billing_url:
        return settings.billing_url
    raise NoLinkTarget("set DUNNING_BILLING_URL: emails without a case link to it")
