"""A synthetic ledger made with ``generate_series``: the benchmark's million cases, or a
few thousand for the dashboard test.

Cases open evenly over the 12 months from ``START``; the other tables scale with the
number of cases. Case i belongs to subscription 1 + i % subs, whose customer is
1 + sub % customers. USD, EUR and JPY; two policies split 50/50; a case's failed charges
share one decline code and card brand, kept on the case as its first failure's (as
``cases.service`` keeps them); dunning emails for one case in five with link opens and
card updates.
"""

from __future__ import annotations

import time

import psycopg

START = "2025-11-01"  # cases open over the 12 months from here
DAYS = 365

# Each statement is one generate_series; ``:cases`` is the number of cases, the other
# tables scale with it. Case i belongs to subscription 1 + i % subs, whose customer is
# 1 + sub % customers.
SEED = [
    (
        "customers",
        """
        INSERT INTO customers (id, email, segment, default_payment_method_id, version)
        SELECT 'cus_' || g, 'c' || g || '@example.com',
               (ARRAY['self_serve', 'smb', 'mid_market', 'enterprise'])[1 + g % 4],
               'pm_' || g, 1
        FROM generate_series(1, {customers}) g""",
    ),
    (
        "payment_methods",
        """
        INSERT INTO payment_methods (id, customer_id, brand, last4, exp_month, exp_year, version)
        SELECT 'pm_' || g, 'cus_' || g,
               (ARRAY['visa', 'visa', 'visa', 'visa', 'mastercard', 'mastercard',
                      'mastercard', 'amex', 'discover', 'visa'])[1 + g % 10],
               lpad((g % 10000)::text, 4, '0'), 1 + g % 12, 2026 + g % 4, 1
        FROM generate_series(1, {customers}) g""",
    ),
    (
        "subscriptions",
        """
        CREATE FUNCTION pg_temp.plan(s int) RETURNS text IMMUTABLE LANGUAGE sql AS
          $$ SELECT CASE WHEN s % 10 < 6 THEN 'basic' WHEN s % 10 < 9 THEN 'pro'
                         ELSE 'pro_annual' END $$;
        CREATE FUNCTION pg_temp.amount(s int) RETURNS bigint IMMUTABLE LANGUAGE sql AS
          $$ SELECT CASE WHEN s % 10 < 6 THEN 1900 WHEN s % 10 < 9 THEN 4900 ELSE 49000 END $$;
        CREATE FUNCTION pg_temp.currency(s int) RETURNS text IMMUTABLE LANGUAGE sql AS
          $$ SELECT CASE WHEN s % 20 < 15 THEN 'usd' WHEN s % 20 < 19 THEN 'eur'
                         ELSE 'jpy' END $$;
        INSERT INTO subscriptions (id, customer_id, status, plan_id, plan_name, interval,
                                   interval_count, amount, currency, current_period_end,
                                   version)
        SELECT 'sub_' || g, 'cus_' || (1 + g % {customers}), 'active',
               pg_temp.plan(g), pg_temp.plan(g),
               CASE WHEN g % 10 < 9 THEN 'month' ELSE 'year' END, 1, pg_temp.amount(g),
               pg_temp.currency(g), now() + make_interval(days => g % 45), 1
        FROM generate_series(1, {subs}) g""",
    ),
    (
        "(plan of the cases)",
        """
        CREATE TEMP TABLE seed AS
        SELECT g, s, 'sub_' || s AS sub, 'cus_' || (1 + s % {customers}) AS customer,
               pg_temp.amount(s) AS amount, pg_temp.currency(s) AS currency,
               created, created + interval '1 hour' AS opened_at, state, end_action,
               CASE WHEN state <> 'open'
                    THEN created + interval '1 hour' + (r2 ^ 2) * interval '30 days' END
                   AS closed_at,
               CASE WHEN state <> 'recovered' THEN NULL
                    WHEN r2 < 0.45 THEN 'retry' WHEN r2 < 0.70 THEN 'processor'
                    WHEN r2 < 0.90 THEN 'customer' ELSE 'card_updater' END AS recovered_by,
               (ARRAY['insufficient_funds', 'insufficient_funds', 'insufficient_funds',
                      'do_not_honor', 'generic_decline', 'expired_card', 'stolen_card',
                      'card_velocity_exceeded', 'processing_error',
                      'try_again_later'])[1 + g % 10] AS decline_code,
               (ARRAY['visa', 'visa', 'visa', 'mastercard', 'mastercard', 'amex',
                      'discover'])[1 + g % 7] AS card_brand
        FROM (
            SELECT g, s, created, r2, r3,
                   CASE WHEN created > timestamptz '{start}' + interval '{open_after} days'
                             AND r3 < 0.4 THEN 'open'
                        WHEN r < 0.55 + 0.1 * (g % 2) THEN 'recovered'
                        WHEN r < 0.75 THEN 'canceled'
                        WHEN r < 0.80 THEN 'uncollectible'
                        WHEN r < 0.90 THEN 'exhausted'
                        ELSE 'voided' END AS state,
                   CASE WHEN r >= 0.65 AND r < 0.75 THEN 'cancel_subscription'
                        WHEN r >= 0.75 AND r < 0.80 THEN 'mark_uncollectible'
                        WHEN r >= 0.80 AND r < 0.90 THEN 'leave_past_due' END AS end_action
            FROM (SELECT g, 1 + g % {subs} AS s, random() AS r, random() AS r2, random() AS r3,
                         timestamptz '{start}' + (g - 1) * interval '{days} days' / {cases}
                             AS created
                  FROM generate_series(1, {cases}) g) q
        ) x""",
    ),
    (
        "invoices (failed renewals)",
        """
        INSERT INTO invoices (id, customer_id, subscription_id, status, billing_reason,
                              amount_due, amount_paid, currency, attempt_count,
                              processor_created, paid_at, version)
        SELECT 'in_c' || g, customer, sub,
               CASE state WHEN 'recovered' THEN 'paid' WHEN 'voided' THEN 'void'
                          WHEN 'uncollectible' THEN 'uncollectible' ELSE 'open' END,
               CASE WHEN g % 20 = 0 THEN 'subscription_create' ELSE 'subscription_cycle' END,
               amount, CASE WHEN state = 'recovered' THEN amount ELSE 0 END, currency, 2,
               created, CASE WHEN state = 'recovered' THEN closed_at END, 1
        FROM seed""",
    ),
    (
        "invoices (paid first time)",
        """
        INSERT INTO invoices (id, customer_id, subscription_id, status, billing_reason,
                              amount_due, amount_paid, currency, attempt_count,
                              processor_created, paid_at, version)
        SELECT 'in_p' || g, 'cus_' || (1 + s % {customers}), 'sub_' || s, 'paid',
               'subscription_cycle', pg_temp.amount(s), pg_temp.amount(s), pg_temp.currency(s),
               1, t, t + interval '1 hour', 1
        FROM (SELECT g, 1 + (g * 7) % {subs} AS s,
                     timestamptz '{start}' - interval '30 days'
                         + (g - 1) * interval '{paid_days} days' / {paid} AS t
              FROM generate_series(1, {paid}) g) q""",
    ),
    (
        "retry_policies",
        """
        INSERT INTO retry_policies (id, name, version, source, created_by)
        VALUES (1, 'default', 1, '', 'bench'), (2, 'paydays', 1, '', 'bench');
        INSERT INTO policy_activation (id, active_policy_id, split_policy_id, split_percent,
                                       updated_by)
        VALUES (1, 1, 2, 50, 'bench')""",
    ),
    (
        "dunning_cases",
        """
        INSERT INTO dunning_cases (id, invoice_id, customer_id, subscription_id, state, amount,
                                   currency, policy_id, policy_version, end_action, opened_at,
                                   closed_at, recovered_amount, recovered_by,
                                   first_decline_code, first_card_brand)
        SELECT g, 'in_c' || g, customer, sub, state, amount, currency, 1 + g % 2, 1,
               end_action, opened_at, closed_at,
               CASE WHEN state = 'recovered' THEN amount END, recovered_by,
               decline_code, card_brand  -- of its first failed charge, as cases.service keeps
        FROM seed""",
    ),
    (
        "churned subscriptions",
        """
        UPDATE subscriptions s SET status = 'canceled', canceled_at = c.closed_at
        FROM seed c
        WHERE c.sub = s.id AND c.end_action = 'cancel_subscription' AND c.state = 'canceled'""",
    ),
    (
        "charge_attempts (failed)",
        """
        INSERT INTO charge_attempts (attempt_key, charge_id, invoice_id, customer_id,
                                     subscription_id, attempt_number, attempted_at, amount,
                                     currency, outcome, failure_code, decline_code,
                                     card_brand, card_last4, triggered_by)
        SELECT 'ch_c' || g || '_' || k, 'ch_c' || g || '_' || k, 'in_c' || g,
               customer, sub, k, opened_at + (k - 1) * interval '2 days', amount, currency,
               'failed', 'card_declined', decline_code, card_brand, '4242',
               CASE WHEN k = 1 THEN 'processor' ELSE 'service' END
        FROM seed CROSS JOIN LATERAL generate_series(1, 1 + g % 6) k""",
    ),
    (
        "charge_attempts (recoveries)",
        """
        INSERT INTO charge_attempts (attempt_key, charge_id, invoice_id, customer_id,
                                     subscription_id, attempted_at, amount, currency, outcome,
                                     card_brand, card_last4, triggered_by)
        SELECT 'ch_r' || g, 'ch_r' || g, 'in_c' || g, customer, sub, closed_at, amount,
               currency, 'succeeded', 'visa', '4242',
               CASE recovered_by WHEN 'retry' THEN 'service' ELSE recovered_by END
        FROM seed WHERE state = 'recovered'""",
    ),
    (
        "charge_attempts (paid first time)",
        """
        INSERT INTO charge_attempts (attempt_key, charge_id, invoice_id, customer_id,
                                     subscription_id, attempted_at, amount, currency, outcome,
                                     card_brand, card_last4, triggered_by)
        SELECT 'ch_p' || g, 'ch_p' || g, 'in_p' || g, 'cus_' || (1 + s % {customers}),
               'sub_' || s, t, pg_temp.amount(s), pg_temp.currency(s), 'succeeded', 'visa',
               '4242', 'processor'
        FROM (SELECT g, 1 + (g * 7) % {subs} AS s,
                     timestamptz '{start}' - interval '30 days'
                         + (g - 1) * interval '{paid_days} days' / {paid}
                         + interval '1 hour' AS t
              FROM generate_series(1, {paid}) g) q""",
    ),
    (
        "case_decisions",
        """
        INSERT INTO case_decisions (case_id, decided_at, kind, attempt_number, decline_class,
                                    reason, policy_id)
        SELECT g, opened_at, 'retry', 1,
               (ARRAY['insufficient_funds', 'insufficient_funds', 'insufficient_funds',
                      'temporary', 'temporary', 'card_data', 'hard', 'insufficient_funds',
                      'temporary', 'temporary'])[1 + g % 10],
               'bench', 1 + g % 2
        FROM seed""",
    ),
    (
        "notifications",
        """
        INSERT INTO notifications (dedupe_key, kind, template, case_id, customer_id, step,
                                   status, created_at, sent_at)
        SELECT 'case:' || g || ':email:' || k, 'dunning',
               (ARRAY['payment_failed', 'payment_reminder', 'final_notice'])[k], g,
               customer, CASE WHEN k < 3 THEN k END, 'sent', opened_at + k * interval '3 days',
               opened_at + k * interval '3 days'
        FROM seed CROSS JOIN generate_series(1, 3) k
        WHERE g % 5 = 0 AND opened_at + k * interval '3 days' < coalesce(closed_at, 'infinity')""",
    ),
    (
        "case_events",
        """
        INSERT INTO case_events (case_id, at, kind, notification_id)
        SELECT n.case_id, n.sent_at + interval '1 hour', 'link_opened', n.id
        FROM notifications n WHERE n.id % 3 = 0;
        INSERT INTO case_events (case_id, at, kind, notification_id)
        SELECT n.case_id, n.sent_at + interval '2 hours', 'card_updated', n.id
        FROM notifications n WHERE n.id % 9 = 0""",
    ),
]


def seed(url: str, cases: int, *, verbose: bool = True) -> None:
    """Fill the (migrated, empty) database at ``url``."""
    params = {
        "cases": cases,
        "customers": max(cases // 5, 10),
        "subs": max(cases * 3 // 10, 10),
        "paid": cases,
        "start": START,
        "days": DAYS,
        "paid_days": DAYS + 30,
        "open_after": DAYS - 45,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT setseed(0.42)")
        for what, sql in SEED:
            t = time.perf_counter()
            conn.execute(sql.format(**params).encode())
            if verbose:
                print(f"  seeded {what:<36} {time.perf_counter() - t:6.1f} s", flush=True)
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        if not verbose:
            return
        print(f"  {'VACUUM ANALYZE':<43} {time.perf_counter() - t:6.1f} s", flush=True)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM dunning_cases), (SELECT count(*) FROM charge_attempts),"
            " (SELECT count(*) FROM invoices), (SELECT count(*) FROM subscriptions)"
        ).fetchone()
        assert counts is not None
        print(
            f"  rows: {counts[0]:,} cases, {counts[1]:,} charge attempts, "
            f"{counts[2]:,} invoices, {counts[3]:,} subscriptions"
        )
