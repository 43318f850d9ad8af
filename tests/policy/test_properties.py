"""Property tests: no policy, however configured, and no history makes ``decide`` break a
card-network rule. The rules are re-written here as plain predicates, independently of
``dunning.policy.network_rules``, so a bug in the guard cannot hide itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from annotated_types import Ge, Le
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dunning.policy.declines import DECLINE_TABLE, DeclineClass
from dunning.policy.engine import decide
from dunning.policy.models import (
    PAYDAY_NAMES,
    ClassAction,
    ClassRule,
    EmailStep,
    EndAction,
    Limits,
    PauseBehavior,
    Policy,
    RetryHours,
    Timing,
)
from dunning.policy.network_rules import guard
from dunning.policy.preview import simulate
from dunning.policy.records import Attempt, Decision, DecisionKind

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------- independent predicates ---

VISA_NEVER = {"04", "07", "12", "14", "41", "43", "46", "57", "R0", "R1", "R3"}
VISA_15_UNTIL = datetime(2025, 4, 12, tzinfo=UTC)
VISA_20_FROM = datetime(2025, 5, 19, tzinfo=UTC)
MC_WAIT = {"24": 1, "25": 24, "26": 48, "27": 96, "28": 144, "29": 192, "30": 240}  # hours


def canon(code: str | None) -> str:
    text = (code or "").strip().upper()
    return text.zfill(2) if text.isdigit() else text


def is_brand(brand: str | None, name: str) -> bool:
    """Unknown brands could be anything, so rules of every network hold for them."""
    return brand is None or brand.lower() == name


def network_violations(
    decision: Decision,
    history: Sequence[Attempt],
    *,
    card_history: Sequence[Attempt] = (),
    card_brand: str | None = None,
    card_updated_at: datetime | None = None,
) -> list[str]:
    """Every card-network rule the decision breaks (empty when it is not a retry)."""
    if decision.kind is not DecisionKind.RETRY:
        return []
    t = decision.at
    assert t is not None
    last = sorted(history, key=lambda a: a.at)[-1]
    brand = card_brand or last.card_brand
    problems: list[str] = []

    def brand_of(a: Attempt) -> str | None:
        return a.card_brand or brand

    # Never-retry codes, on the card now on file: not one put on file since (a new card
    # lifts them), nor another card the case used (another fingerprint).
    on_current_card = [
        a
        for a in history
        if (card_updated_at is None or a.at > card_updated_at)
        and (last.card_fingerprint is None or a.card_fingerprint in (None, last.card_fingerprint))
    ]
    for a in {*on_current_card, *card_history}:
        if a.succeeded:
            continue
        if (a.advice_code or "").strip().lower() == "do_not_try_again":
            problems.append(f"retry after Stripe do_not_try_again at {a.at}")
        if canon(a.network_advice_code) in {"03", "21"} and is_brand(brand_of(a), "mastercard"):
            problems.append(f"retry after Mastercard MAC {a.network_advice_code}")
        code = canon(a.network_decline_code)
        visa_never = code in VISA_NEVER or (code == "15" and t < VISA_15_UNTIL)
        if visa_never and is_brand(brand_of(a), "visa"):
            problems.append(f"retry after Visa category-1 code {code}")

    declines = [a for a in {*history, *card_history} if not a.succeeded]
    for a in declines:
        wait = MC_WAIT.get(canon(a.network_advice_code))
        if wait and is_brand(brand_of(a), "mastercard") and t < a.at + timedelta(hours=wait):
            problems.append(f"retry before MAC {a.network_advice_code} wait ({a.at} + {wait} h)")

    def within(a: Attempt, span: timedelta) -> bool:
        return t - span < a.at <= t

    if is_brand(brand, "visa"):
        n = sum(1 for a in declines if a.merchant_initiated and within(a, timedelta(days=30)))
        limit = 20 if t >= VISA_20_FROM else 15
        if n + 1 > limit:
            problems.append(f"Visa: {n} declines in 30 days before {t}, limit {limit}")
    if is_brand(brand, "mastercard"):
        n24 = sum(1 for a in declines if within(a, timedelta(hours=24)))
        if n24 + 1 > 10:
            problems.append(f"Mastercard: {n24} declines in 24 h before {t}")
        same = [
            a
            for a in declines
            if a.amount == last.amount and a.currency.lower() == last.currency.lower()
        ]
        n30 = sum(1 for a in same if within(a, timedelta(days=30)))
        if n30 + 1 > 35:
            problems.append(f"Mastercard: {n30} declines of this amount in 30 days before {t}")
    return problems


def zone(time_zone: str, fallback: str) -> ZoneInfo:
    for name in (time_zone, fallback, "UTC"):
        try:
            return ZoneInfo(name)
        except Exception:
            continue
    raise AssertionError


def policy_violations(
    decision: Decision,
    policy: Policy,
    history: Sequence[Attempt],
    *,
    now: datetime,
    time_zone: str,
    account_time_zone: str = "UTC",
    card_updated_at: datetime | None = None,
) -> list[str]:
    """Ways the decision disobeys the policy's own limits and calendar."""
    problems: list[str] = []
    ordered = sorted(history, key=lambda a: a.at)
    first_failure = next(a for a in ordered if not a.succeeded)
    deadline = first_failure.at + timedelta(days=policy.limits.max_days)
    if decision.attempt_number != len(history) + 1:
        problems.append("attempt_number is not len(history) + 1")
    new_card = card_updated_at is not None and card_updated_at > ordered[-1].at
    used_up = len(history) >= policy.limits.max_attempts
    if used_up and decision.kind is DecisionKind.RETRY and not new_card:
        problems.append("max_attempts reached and still retrying the same card")  # a new card may
    if now >= deadline and decision.kind is not DecisionKind.GIVE_UP:
        problems.append("max_days reached without giving up")
    if decision.kind is DecisionKind.GIVE_UP:
        if decision.end_action is not policy.end_action or decision.at != now:
            problems.append("give up without the policy's end action at now")
        return problems
    if decision.end_action is not None:
        problems.append("end_action set on a decision that is not GIVE_UP")
    if decision.kind is not DecisionKind.RETRY:
        if decision.at != deadline:
            problems.append("waiting decision not at the case deadline")
        return problems
    t = decision.at
    assert t is not None
    timing = policy.timing
    local = t.astimezone(zone(time_zone, account_time_zone))
    if t < now:
        problems.append("retry in the past")
    if t > deadline:
        problems.append("retry after the case deadline")
    if t < ordered[-1].at + timedelta(hours=timing.min_spacing_hours):
        problems.append("retry closer than min_spacing_hours")
    if not timing.retry_hours.start <= local.hour < timing.retry_hours.end:
        problems.append(f"retry at local {local:%H:%M}, outside retry hours")
    if timing.skip_weekends and local.weekday() >= 5:
        problems.append("retry on a weekend")
    country = timing.holiday_country
    if country and local.date() in holidays.country_holidays(country, years=local.year):
        problems.append("retry on a holiday")
    return problems


# ------------------------------------------------------------------------ strategies ---


def bounds(model: type[BaseModel], name: str) -> tuple[int, int]:
    """The ge/le bounds the pydantic model declares for an integer field."""
    low = high = None
    for item in model.model_fields[name].metadata:
        if isinstance(item, Ge):
            low = int(item.ge)  # type: ignore[call-overload]
        if isinstance(item, Le):
            high = int(item.le)  # type: ignore[call-overload]
    assert low is not None and high is not None, name
    return low, high


def ints(model: type[BaseModel], name: str, cap: int | None = None) -> st.SearchStrategy[int]:
    """Any value in the field's declared range."""
    low, high = bounds(model, name)
    return st.sampled_from(range(low, (high if cap is None else min(high, cap)) + 1))


NO_RETRY_ACTIONS = [a.value for a in ClassAction if a is not ClassAction.RETRY]
RESTRICTED = {DeclineClass.HARD, DeclineClass.CARD_DATA, DeclineClass.AUTHENTICATION_REQUIRED}
# The strategies below fill every field of the policy models; a new field fails here
# until the strategy learns about it.
assert set(ClassRule.model_fields) == {"action", "backoff_hours", "payday", "cascade"}
assert set(EmailStep.model_fields) == {"day", "template", "channels"}
assert set(Timing.model_fields) == {
    "retry_hours", "skip_weekends", "holiday_country", "min_spacing_hours", "paydays",
}  # fmt: skip
assert set(Policy.model_fields) == {
    "name", "version", "description", "end_action", "pause_behavior",
    "final_notice_days_before_end", "limits", "timing", "classes", "email_steps",
}  # fmt: skip

no_retry = st.fixed_dictionaries(
    {"action": st.sampled_from(NO_RETRY_ACTIONS)}, optional={"cascade": st.booleans()}
)
backoffs = st.lists(st.floats(0.25, 24 * 30, allow_nan=False), min_size=1, max_size=4)
retry = st.one_of(
    st.fixed_dictionaries({"action": st.just("retry"), "backoff_hours": backoffs}),
    st.fixed_dictionaries({"action": st.just("retry"), "payday": st.just(True)}),
    st.fixed_dictionaries(
        {"action": st.just("retry"), "payday": st.just(True), "backoff_hours": backoffs}
    ),
)
channels = st.sampled_from([["email"], ["sms"], ["email", "sms"], ["sms", "email"]])
paydays = st.lists(
    st.one_of(st.integers(1, 31), st.sampled_from(sorted(PAYDAY_NAMES))),
    min_size=1,
    max_size=4,
    unique=True,
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Random valid policies, field by field from the model's declared ranges."""
    start = draw(ints(RetryHours, "start"))
    end = draw(st.integers(start + 1, bounds(RetryHours, "end")[1]))
    max_days = draw(ints(Limits, "max_days", cap=60))
    classes = {
        cls.value: draw(no_retry if cls in RESTRICTED else st.one_of(retry, retry, retry, no_retry))
        for cls in DeclineClass
    }
    email_days = draw(st.lists(st.integers(0, max_days), unique=True, max_size=3))
    data: dict[str, Any] = {
        "name": "random",
        "version": draw(st.integers(1, 50)),
        "end_action": draw(st.sampled_from([e.value for e in EndAction])),
        "pause_behavior": draw(st.sampled_from([b.value for b in PauseBehavior])),
        "final_notice_days_before_end": draw(st.integers(0, max_days - 1)),
        "limits": {
            "max_attempts": draw(st.one_of(ints(Limits, "max_attempts", 40), st.integers(8, 40))),
            "max_days": max_days,
        },
        "timing": {
            "retry_hours": {"start": start, "end": end},
            "skip_weekends": draw(st.booleans()),
            "holiday_country": draw(st.sampled_from([None, "US", "DE", "CN", "GB", "BR"])),
            "min_spacing_hours": draw(st.floats(0, 72, allow_nan=False)),
            "paydays": draw(paydays),
        },
        "classes": classes,
        "email_steps": [
            {"day": day, "template": f"step_{day}", "channels": draw(channels)}
            for day in sorted(email_days)
        ],
    }
    return Policy.model_validate(data)


def sometimes(percent: int, values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """``values`` in about ``percent`` % of draws, else None."""
    return st.integers(0, 99).flatmap(lambda r: values if r < percent else st.none())


def codes(field: str, extra: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """A code from the decline table, or an odd spelling of one."""
    return st.sampled_from([*sorted(code for (f, code) in DECLINE_TABLE if f == field), *extra])


RETRYABLE = sorted(
    code
    for (field, code), rule in DECLINE_TABLE.items()
    if field == "decline_code" and rule.decline_class not in RESTRICTED
)
decline_codes = st.one_of(
    st.sampled_from(RETRYABLE),
    st.sampled_from(RETRYABLE),
    codes("decline_code", ["brand_new_code", "Insufficient_Funds"]),
)
failure_codes = codes("failure_code", ["card_declined"])
advice_codes = codes("advice_code", ["DO_NOT_TRY_AGAIN"])
# Half the network codes are the ones the rules are about, so those paths get exercised.
macs = st.one_of(
    st.sampled_from([*sorted(MC_WAIT), "03", "21"]),
    codes("network_advice_code", ["3", "99", "04", "22"]),
)
network_codes = st.one_of(
    st.sampled_from(sorted(VISA_NEVER | {"15"})), codes("network_decline_code", ["r1", "4", "00"])
)
brands = st.sampled_from(["visa", "mastercard", "amex", "discover", None])
ZONES = [
    "UTC", "America/New_York", "Asia/Shanghai", "Europe/Berlin", "Australia/Sydney",
    "Pacific/Kiritimati", "America/St_Johns", "Asia/Kathmandu", "", "Not/AZone",
]  # fmt: skip
MINUTE = timedelta(minutes=1)
DAY_MINUTES = 24 * 60
CUTOFFS = [VISA_15_UNTIL, VISA_20_FROM]


def near(points: Sequence[datetime], minutes: int) -> st.SearchStrategy[datetime]:
    """Times within ``minutes`` of one of ``points`` (where off-by-one bugs live)."""
    return st.sampled_from(list(points)).flatmap(
        lambda p: st.integers(-minutes, minutes).map(lambda m: p + m * MINUTE)
    )


def attempts(
    now: datetime,
    minutes_back: st.SearchStrategy[int],
    brand: str | None,
    amount: int,
    rare: int = 8,
) -> st.SearchStrategy[Attempt]:
    """Attempts on the card; ``rare`` is the % chance of each advice / network code."""
    return st.builds(
        Attempt,
        at=minutes_back.map(lambda m: now - m * MINUTE),
        amount=st.sampled_from([amount] * 5 + [999]),
        currency=st.sampled_from(["usd"] * 5 + ["eur"]),
        succeeded=st.sampled_from([False] * 9 + [True]),
        decline_code=sometimes(90, decline_codes),
        failure_code=sometimes(15, failure_codes),
        network_decline_code=sometimes(rare, network_codes),
        advice_code=sometimes(rare, advice_codes),
        network_advice_code=sometimes(rare * 2, macs),
        card_brand=st.sampled_from([brand, brand, brand, None]),
        card_fingerprint=st.sampled_from(["fp", "fp", "fp", "fp_new", None]),
        merchant_initiated=st.sampled_from([True] * 5 + [False]),
    )


@dataclass(frozen=True)
class Scenario:
    policy: Policy
    history: list[Attempt]
    now: datetime
    time_zone: str
    account_time_zone: str
    card_brand: str | None
    card_history: list[Attempt]
    card_updated_at: datetime | None
    processor_retry_at: datetime | None = None
    retry_now: bool = False


# How the other declines on the card are spread: rarely, in a 24 h burst (Mastercard's
# 10 per day), or over a month (Visa's 15/20 and Mastercard's 35 per 30 days).
SHAPES: dict[str, tuple[int, int, int]] = {  # name: (min count, max count, minutes back)
    "sparse": (0, 8, 45 * DAY_MINUTES),
    "burst": (5, 14, DAY_MINUTES),
    "month": (10, 40, 30 * DAY_MINUTES),
    "full_month": (30, 50, 30 * DAY_MINUTES),
}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    now = draw(
        st.one_of(
            st.datetimes(datetime(2025, 2, 1), datetime(2025, 8, 31), timezones=st.just(UTC)),
            near(CUTOFFS, 5 * DAY_MINUTES),
        )
    )
    policy = draw(policies())
    brand = draw(brands)
    amount = 2000
    low, high, back = SHAPES[draw(st.sampled_from(sorted(SHAPES)))]
    # Mostly a live case (fewer attempts than the limit, within max_days), sometimes not.
    max_days = policy.limits.max_days
    span = draw(
        st.one_of(
            st.just(DAY_MINUTES),
            st.integers(0, max_days * DAY_MINUTES - 1),
            st.integers(0, (max_days + 3) * DAY_MINUTES),
        )
    )
    case_back = st.integers(0, span)
    limit = policy.limits.max_attempts
    at_limit = draw(st.sampled_from([False] * 9 + [True]))  # a case that used every attempt
    size = limit if at_limit else draw(st.integers(1, max(1, min(limit - 1, 20))))
    rare = draw(st.sampled_from([0, 4, 10]))
    history = sorted(
        draw(st.lists(attempts(now, case_back, brand, amount, rare), min_size=size, max_size=size)),
        key=lambda a: a.at,
    )
    # The case's last attempt is the failure being decided on, in the case's currency.
    history[-1] = replace(history[-1], succeeded=False, amount=amount, currency="usd")
    card_history = draw(
        st.lists(
            attempts(now, st.integers(0, back), brand, amount, draw(st.sampled_from([0, 1, 3]))),
            min_size=low,
            max_size=high,
        )
    )
    updated = draw(st.one_of(st.none(), st.integers(0, 40 * DAY_MINUTES)))
    return Scenario(
        policy=policy,
        history=history,
        now=now,
        time_zone=draw(st.sampled_from(ZONES)),
        account_time_zone=draw(st.sampled_from(ZONES)),
        card_brand=draw(st.one_of(st.none(), brands)),
        card_history=card_history,
        card_updated_at=None if updated is None else now - updated * MINUTE,
        processor_retry_at=draw(
            st.one_of(st.none(), st.integers(-3 * DAY_MINUTES, 40 * DAY_MINUTES)).map(
                lambda m: None if m is None else now + m * MINUTE
            )
        ),
        retry_now=draw(st.sampled_from([False] * 9 + [True])),
    )


def run(s: Scenario) -> Decision:
    return decide(
        s.policy,
        s.history,
        now=s.now,
        time_zone=s.time_zone,
        card_brand=s.card_brand,
        card_history=s.card_history,
        card_updated_at=s.card_updated_at,
        account_time_zone=s.account_time_zone,
        processor_retry_at=s.processor_retry_at,
        retry_now=s.retry_now,
    )


# ---------------------------------------------------------------------------- tests ---


@SETTINGS
@given(scenarios())
def test_decide_never_breaks_a_network_rule(s: Scenario) -> None:
    """The brief's property; the same decision is also checked against its own policy."""
    decision = run(s)
    event(f"decide: {decision.kind}, {'moved' if 'moved later' in decision.reason else ''}")
    assert not network_violations(
        decision,
        s.history,
        card_history=s.card_history,
        card_brand=s.card_brand,
        card_updated_at=s.card_updated_at,
    ), decision
    assert run(s) == decision  # deterministic
    if s.retry_now:  # ops skip the policy's own timing and limits, never the networks'
        assert decision.kind is not DecisionKind.GIVE_UP
        assert decision.kind is not DecisionKind.RETRY or (decision.at or s.now) >= s.now
        return
    assert not policy_violations(
        decision,
        s.policy,
        s.history,
        now=s.now,
        time_zone=s.time_zone,
        account_time_zone=s.account_time_zone,
        card_updated_at=s.card_updated_at,
    ), decision
    if decision.kind is DecisionKind.RETRY and s.processor_retry_at is not None:
        assert decision.at is not None
        assert decision.at >= s.processor_retry_at + timedelta(hours=1), decision


WAITS = [timedelta(hours=h) for h in (1, 24, 48, 96, 144, 192, 240, 24 * 30)]


@st.composite
def proposals(draw: st.DrawFn, s: Scenario) -> datetime:
    """Proposed retry times: anywhere, or just around a wait, a window edge or a cutoff."""
    attempts = (*s.history, *s.card_history)
    edges = [a.at + w for a in attempts for w in WAITS]
    mac_edges = [
        a.at + timedelta(hours=MC_WAIT[canon(a.network_advice_code)])
        for a in attempts
        if canon(a.network_advice_code) in MC_WAIT
    ]
    return draw(
        st.one_of(
            st.integers(0, 60 * DAY_MINUTES).map(lambda m: s.now + m * MINUTE),
            near(edges, 90),
            near(mac_edges or edges, 90),
            near(CUTOFFS, 90),
            near(CUTOFFS, 10 * DAY_MINUTES),
        )
    )


# One group per rule, so each rule is picked as often as the others.
FLAGS: list[tuple[str, list[str]]] = [
    ("network_decline_code", sorted(VISA_NEVER)),
    ("network_decline_code", ["15"]),
    ("network_advice_code", ["03", "21"]),
    ("network_advice_code", sorted(MC_WAIT)),
    ("advice_code", ["do_not_try_again"]),
]


@st.composite
def flagged(draw: st.DrawFn, s: Scenario) -> Scenario:
    """The scenario plus one decline carrying a code a rule is about, somewhere on the card."""
    field, values = draw(st.sampled_from(FLAGS))
    value = draw(st.sampled_from(values))
    plain = Attempt(
        at=s.now - draw(st.integers(0, 35 * DAY_MINUTES)) * MINUTE,
        amount=2000,
        currency="usd",
        card_brand=draw(st.sampled_from(["visa", None, "mastercard", "amex"])),
    )
    code: dict[str, Any] = {field: value}
    attempt = replace(plain, **code)
    if draw(st.booleans()):
        return replace(s, card_history=[*s.card_history, attempt])
    return replace(s, history=sorted([*s.history, attempt], key=lambda a: a.at))


@SETTINGS
@given(st.data())
def test_guard_alone_never_lets_a_breaking_retry_through(data: st.DataObject) -> None:
    s = data.draw(scenarios())
    for _ in range(data.draw(st.sampled_from([1, 1, 2, 0]))):
        s = data.draw(flagged(s))
    proposal = Decision(
        DecisionKind.RETRY, data.draw(proposals(s)), "any", DeclineClass.UNKNOWN, None, 2
    )
    kwargs: dict[str, Any] = {
        "card_history": s.card_history,
        "card_brand": s.card_brand,
        "card_updated_at": s.card_updated_at,
    }
    guarded = guard(proposal, history=s.history, **kwargs)
    event(f"guard: {guarded.kind}, {'moved' if guarded.at != proposal.at else 'same time'}")
    assert not network_violations(guarded, s.history, **kwargs), guarded
    if guarded.kind is DecisionKind.RETRY:
        assert guarded.at is not None and proposal.at is not None
        assert guarded.at >= proposal.at
    assert guard(guarded, history=s.history, **kwargs) == guarded  # idempotent


@settings(SETTINGS, max_examples=100)
@given(scenarios())
def test_every_step_of_a_preview_is_legal(s: Scenario) -> None:
    first = s.history[-1]
    steps = simulate(
        s.policy,
        first,
        time_zone=s.time_zone,
        card_brand=s.card_brand,
        card_history=s.card_history,
        account_time_zone=s.account_time_zone,
    )
    history = [first]
    for decision in steps:
        assert not network_violations(
            decision, history, card_history=s.card_history, card_brand=s.card_brand
        ), decision
        if decision.kind is DecisionKind.RETRY and decision.at is not None:
            history.append(replace(first, at=decision.at))
    assert steps[-1].kind is DecisionKind.GIVE_UP
