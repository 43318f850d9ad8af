"""Self-serve card-update links: signed tokens and the hosted page at ``/pay/<token>``.

``make_link(case_id, customer_id, notification_id)`` is what emails put in their button.
"""

from dunning.links.tokens import make_link

__all__ = ["make_link"]
