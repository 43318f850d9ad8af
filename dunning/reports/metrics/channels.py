"""Recovered revenue by channel, with the card updater's calls and the SMS sent.

``recovered_by`` splits the cohort's recoveries once (retry, processor, customer, card
updater: who made the charge that paid). SMS is not one of them: a customer who paid
through an SMS link is a ``customer`` recovery. Its row says how many SMS went to the
cohort and how many recoveries followed one; those are also in the channel that charged,
so the ``sms`` row is never added to the others.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from dunning.reports.metrics.cohort import Groups, cohort_groups
from dunning.reports.metrics.rollup import Rolled
from dunning.reports.metrics.sql import PAID, RECOVERED, Ranges, among_cases, cohort
from dunning.reports.schemas import ChannelRow, Filters
from dunning.reports.stats import ratio

UPDATER = "card_updater"
SMS = "sms"
CHANNELS = ("retry", "processor", "customer", UPDATER)
"""The values of ``recovered_by``: they split the recovered revenue."""

# What a customer does through a link that can lead to a payment.
_ACTED = "('card_updated', 'payment_attempted')"


Updater = dict[str, tuple[int, int]]
Sms = Mapping[str, tuple[int, int, int]]

CHANNEL = "channel"
"""The ``cohort_groups`` grouping ``recovered_by_channel`` reads."""


def recovered_by_channel(
    conn: Connection,
    f: Filters,
    groups: Groups | None = None,
    side: tuple[Updater, Sms] | None = None,
) -> list[ChannelRow]:
    """Recovered revenue of the cohort by channel, per currency (every channel listed),
    then the ``sms`` row: SMS sent and the recoveries that followed an SMS link.
    ``groups`` (``cohort_groups`` of ``f`` with ``CHANNEL``) and ``side``
    (``updater_calls`` and ``sms_sent`` of ``f``): when the caller has them."""
    found = {
        (r["currency"], r["value"]): {
            "cases": r["cases_recovered"],
            "amount": r["recovered_amount"],
        }
        for r in (groups or cohort_groups(conn, f, [CHANNEL])).rows(CHANNEL, f.currency)
        if r["value"] is not None
    }
    updater, sms = side or (updater_calls(conn, f), sms_sent(conn, f))
    out: list[ChannelRow] = []
    for currency in sorted({cur for cur, _ in found} | set(updater) | set(sms)):
        total = sum(r["amount"] for (cur, _), r in found.items() if cur == currency)
        channels = [*CHANNELS, *sorted({ch for cur, ch in found if cur == currency} - {*CHANNELS})]
        calls, hits = updater.get(currency, (0, 0))
        for channel in channels:
            r = found.get((currency, channel), {"cases": 0, "amount": 0})
            out.append(
                ChannelRow(
                    currency=currency,
                    channel=channel,
                    cases=r["cases"],
                    amount=r["amount"],
                    share=ratio(r["amount"], total),
                    calls=calls if channel == UPDATER else None,
                    hits=hits if channel == UPDATER else None,
                    sent=None,
                )
            )
        sent, cases, amount = sms.get(currency, (0, 0, 0))
        out.append(
            ChannelRow(
                currency=currency,
                channel=SMS,
                cases=cases,
                amount=amount,
                share=ratio(amount, total),
                calls=None,
                hits=None,
                sent=sent,
            )
        )
    return out


def _updater_calls(f: Filters, ranges: Ranges | None) -> str:
    return f"""
        SELECT c.currency, count(*) AS calls,
            count(*) FILTER (WHERE r.result IN ('new_expiry', 'new_card')) AS hits
        FROM card_updater_requests r, {cohort(f, ranges)}
          AND r.case_id = c.id AND {among_cases("r.case_id")} AND r.reason <> 'fetch'
        GROUP BY 1"""


UPDATER_CALLS = Rolled(
    "report_updater_calls", ("currency", "calls", "hits"), _updater_calls, bounded=True
)
"""The card updater's calls about the cohort's cases and their hits, per stored currency."""


def updater_calls(conn: Connection, f: Filters) -> Updater:
    """Per currency: the card updater's calls about the cohort's cases, and its hits (the
    card changed). A first read of an unknown card (``fetch``) is no updater call.
    Settled months from the rollup."""
    return {cur: (v[0], v[1]) for cur, v in UPDATER_CALLS.summed(conn, f).items()}


def _sms_sent(f: Filters, ranges: Ranges | None) -> str:
    return f"""
        SELECT c.currency, sum(c.sent)::bigint AS sent,
            count(*) FILTER (WHERE {RECOVERED} AND c.acted) AS cases,
            coalesce(sum({PAID}) FILTER (WHERE {RECOVERED} AND c.acted), 0)::bigint AS amount
        FROM (
            SELECT c.id, c.currency, c.state, c.amount, c.recovered_amount, count(*) AS sent,
                bool_or(EXISTS (SELECT 1 FROM case_events ev
                    WHERE ev.notification_id = n.id AND ev.kind IN {_ACTED})) AS acted
            FROM (SELECT c.* FROM {cohort(f, ranges)}) c
            JOIN notifications n ON n.case_id = c.id AND n.channel = 'sms' AND n.status = 'sent'
              AND {among_cases("n.case_id")}
            GROUP BY 1, 2, 3, 4, 5
        ) c
        GROUP BY 1"""


SMS_SENT = Rolled("report_sms", ("currency", "sent", "cases", "amount"), _sms_sent, bounded=True)
"""The SMS sent about the cohort's cases and the recoveries that followed one, per stored
currency."""


def sms_sent(conn: Connection, f: Filters) -> Sms:
    """Per currency: (SMS sent about the cohort's cases, recovered cases whose customer
    updated the card or paid through an SMS link, their recovered amount). Settled
    months from the rollup."""
    return {
        cur: (sent, cases, amount)
        for cur, (sent, cases, amount) in SMS_SENT.summed(conn, f).items()
    }
