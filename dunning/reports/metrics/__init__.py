"""Every finance metric, defined once: SQL over the ledger, one function per table.

The API, the CSV export, the dashboard and ``dunning report`` all call these functions
(through ``reports.tables``), so a number means the same thing wherever it is read. The
SQL fragments they share are in ``sql``; one module per group of tables. Definitions
(also in the README):

- **Period**: ``[start, end)`` in UTC. Amounts are grouped by currency and never added
  across currencies; a row whose currency is unknown is reported under ``xxx``.
- **Cohort**: the dunning cases *opened* (first failed charge) in the period. One case per
  invoice, so a case that was closed, reopened and then recovered counts once.
  Closed = any state but ``open``.
- **Failure rate**: renewal invoices whose first charge failed ÷ renewal invoices first
  charged in the period. A renewal invoice has ``billing_reason = subscription_cycle``
  (or no billing reason but a subscription). Its first charge failed when a case was opened
  for it in the period; it was first charged successfully when it was paid in the period
  (``paid_at``, amount paid > 0) and has no case. Retries are not charges of a new renewal:
  a policy that retries more does not raise the failure rate.
- **Recovery rate** (count) = recovered ÷ closed cases of the cohort; **by amount** =
  amount paid on recovered cases ÷ amount of the closed cases. Open cases are in neither
  (they are reported as ``cases_open``).
- **Recovered revenue by channel**: ``recovered_by`` of the recovered cases: ``retry`` (our
  retry), ``processor`` (the processor's own retry), ``customer`` (through the link),
  ``card_updater``.
- **Time to recovery**: ``closed_at - opened_at`` of recovered cases of the cohort,
  median and 90th percentile (continuous), and counts by whole days since the failure.
- **Involuntary churn**: subscriptions canceled by the dunning end action (a case with
  ``end_action = cancel_subscription`` that closed as ``canceled``) in the period ÷
  subscriptions live in the period: active at its start, or started during it. Live:
  not canceled before the start, not ``incomplete``, and ``start_date`` (Stripe's, else
  ``created``) before the end; active at the start: ``start_date`` before the start. A
  subscription with no start date yet falls back to: an invoice created before the end
  (before the start, for "active at the start").
- **MRR**: a subscription's amount normalised to a month (yearly ÷ 12, weekly * 52/12,
  daily * 365/12, divided by the interval count).
- **Breakdowns** (cohort): decline class = the class of the case's last failed charge
  (``dunning_cases.decline_class``, recomputed from the ledger, so delivery order does
  not change it); decline code and card brand = those of the case's first failed charge,
  by time then id, its decline code else its failure code (``first_decline_code``,
  ``first_card_brand``, kept on the case the same way);
  plan and segment = the subscription's plan and the customer's segment now; policy = the
  policy version the case was opened with (the A/B arm).
- **A/B**: per policy version, recovery rate of the cohort with its 95 % Wilson interval;
  ``n`` is the number of closed cases (counts of all currencies together).
- **Email funnel** (cohort, per step and template): dunning emails sent (not the emails
  announcing an outcome) → of those, emails whose link was opened → whose link led to a
  card update → and whose case was recovered. Each stage is a subset of the one before.
- **At risk**: active, trialing or past-due subscriptions renewing within the horizon
  (30 days) whose default card (the subscription's, else the customer's) expires before
  the renewal date; amount = the upcoming invoice amount, else the plan amount.
"""
