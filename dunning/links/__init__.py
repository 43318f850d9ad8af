"""Self-serve card-update links: signed tokens and the hosted page at ``/pay/<token>``.

``make_link(case_id, customer_id, notification_id)`` is what dunning emails put in
their button; ``make_customer_link(customer_id, notification_id)`` is what emails
without a case (renewal reminders, card-expiring notices) put in theirs.
"""

from dunning.links.tokens import make_customer_link, make_link

__all__ = ["make_customer_link", "make_link"]
