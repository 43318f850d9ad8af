"""The policy store against the real database: versions, activation, split, audit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from dunning.admin.actors import cli_actor
from dunning.db import session_scope
from dunning.policy.activation import (
    DEFAULT_POLICY_FILE,
    activate,
    clear_split,
    current_activation,
    set_split,
)
from dunning.policy.errors import InvalidRequest, PolicyConflict, PolicyNotFound
from dunning.policy.models import PolicyError
from dunning.policy.store import (
    active_policy,
    apply_policy,
    policy_by_id,
    policy_for_customer,
    split_bucket,
)
from dunning.policy.versions import get_policy, get_policy_by_id, list_policies
from tests.support.admin import policy_text, shipped_version
from tests.support.ledger import rows, scalar

CUSTOMERS = [f"cus_{i:06d}" for i in range(1000)]

V = shipped_version()  # the shipped default policy's version: installed first


def _audit() -> list[tuple[str, str, str | None]]:
    found = rows("SELECT actor, action, target_id FROM audit_log ORDER BY id")
    return [(r["actor"], r["action"], r["target_id"]) for r in found]


def test_an_empty_database_gets_the_default_policy_once(clean_db: None) -> None:
    with session_scope() as session:
        policy_id, policy = active_policy(session)
    with session_scope() as session:
        assert active_policy(session)[0] == policy_id
    assert (policy.name, policy.version) == ("default", V)
    [row] = rows("SELECT id, source, created_by FROM retry_policies")
    assert row["source"] == DEFAULT_POLICY_FILE.read_text(encoding="utf-8")  # verbatim
    assert row["created_by"] == "system"
    pid = str(policy_id)
    assert _audit() == [("system", "policy.apply", pid), ("system", "policy.activate", pid)]


def test_two_processes_bootstrapping_at_once_install_one_default(clean_db: None) -> None:
    seen: list[int] = []

    def other() -> None:
        with session_scope() as session:
            seen.append(active_policy(session)[0])

    with session_scope() as session:
        mine = active_policy(session)[0]
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # waits on our uncommitted insert instead of duplicating it
    thread.join(10)
    assert seen == [mine]
    assert scalar("SELECT count(*) FROM retry_policies") == 1
    assert scalar("SELECT count(*) FROM audit_log WHERE action = 'policy.activate'") == 1


def test_apply_list_show(clean_db: None) -> None:
    with session_scope() as session:
        stored = apply_policy(session, policy_text(2), "alice")
    assert stored.created and stored.label == f"default v{V + 1}"
    with session_scope() as session:
        listed = [(p.name, p.version) for p in list_policies(session)]
        shown = get_policy(session, "default", V + 1)
        latest = get_policy(session, "default")
        by_id = get_policy_by_id(session, stored.id)
        assert policy_by_id(session, stored.id) == stored.policy
        with pytest.raises(PolicyNotFound, match="no stored policy default v9"):
            get_policy(session, "default", 9)
    assert listed == [("default", V + 1), ("default", V)]  # the file installed first, still active
    assert shown.source == policy_text(2) and shown.created_by == "alice" and not shown.created
    assert latest.id == by_id.id == stored.id
    assert shown.policy.version == V + 1


def test_versions_are_immutable(clean_db: None) -> None:
    with session_scope() as session:
        first = apply_policy(session, policy_text(2), "alice")
    with session_scope() as session:
        again = apply_policy(session, policy_text(2), "bob")
    assert again.id == first.id and not again.created and again.created_by == "alice"
    with session_scope() as session, pytest.raises(PolicyConflict) as conflict:
        apply_policy(session, policy_text(2, max_attempts=5), "bob")
    assert f"bump `version` (e.g. to {V + 2})" in str(conflict.value)
    assert scalar("SELECT count(*) FROM retry_policies WHERE version = 2") == 1
    # no-ops and refusals are not changes
    assert [a[:2] for a in _audit() if a[0] != "system"] == [("alice", "policy.apply")]


def test_invalid_policies_are_refused_with_every_problem(clean_db: None) -> None:
    bad = policy_text(2).replace("max_days = 28", "max_days = 0").replace("start = 9", "start = 19")
    with session_scope() as session, pytest.raises(PolicyError) as error:
        apply_policy(session, bad, "alice")
    problems = "\n".join(error.value.problems)
    assert "limits.max_days" in problems and "retry_hours" in problems
    assert scalar("SELECT count(*) FROM retry_policies") == 0


def test_activate_switches_exactly_one(clean_db: None) -> None:
    with session_scope() as session:
        default_id = active_policy(session)[0]
        v2 = apply_policy(session, policy_text(2), "alice")
        other = apply_policy(session, policy_text(1, name="gentle", max_attempts=4), "alice")
    with session_scope() as session:
        act = activate(session, "default", V + 1, "alice")
    assert act.active.id == v2.id
    with session_scope() as session:
        act = current_activation(session)
        statuses = {p.label: act.status(p.id) for p in list_policies(session)}
        assert active_policy(session) == (v2.id, v2.policy)
    assert statuses == {
        f"default v{V}": "inactive",
        f"default v{V + 1}": "active",
        f"gentle v{V}": "inactive",
    }
    assert scalar("SELECT count(*) FROM policy_activation") == 1
    with session_scope() as session:
        activate(session, "default", V + 1, "alice")  # already active: nothing to change
        activate(session, "gentle", V, "bob")
        activate(session, "default", V, "bob")  # rollback
    with session_scope() as session:
        assert active_policy(session)[0] == default_id
    activations = [a for a in _audit() if a[1] == "policy.activate"]
    assert activations == [
        ("system", "policy.activate", str(default_id)),
        ("alice", "policy.activate", str(v2.id)),
        ("bob", "policy.activate", str(other.id)),
        ("bob", "policy.activate", str(default_id)),
    ]
    [last] = rows("SELECT details FROM audit_log ORDER BY id DESC LIMIT 1")
    assert last["details"]["previous"] == {"id": other.id, "name": "gentle", "version": V}


def test_applying_on_an_empty_database_installs_the_default_first(clean_db: None) -> None:
    with session_scope() as session:
        gentle = apply_policy(session, policy_text(1, name="gentle"), "alice")
    with session_scope() as session:
        default_id, policy = active_policy(session)
        assert default_id != gentle.id and policy.name == "default"
    with session_scope() as session, pytest.raises(PolicyConflict):
        apply_policy(session, policy_text(1, max_attempts=3), "alice")  # not the file's v1
    assert [a[1] for a in _audit()] == ["policy.apply", "policy.activate", "policy.apply"]


def _arms(split_id: int) -> set[str]:
    with session_scope() as session:
        return {c for c in CUSTOMERS if policy_for_customer(session, c)[0] == split_id}


def test_a_split_assigns_customers_stably_and_in_proportion(clean_db: None) -> None:
    with session_scope() as session:
        default_id = active_policy(session)[0]
        v2 = apply_policy(session, policy_text(2), "alice")
    with session_scope() as session:
        act = set_split(session, "default", V + 1, 30, "alice")
    assert act.split is not None and act.split.id == v2.id and act.share(default_id) == 70

    in_b = _arms(v2.id)
    assert 250 <= len(in_b) <= 350
    assert _arms(v2.id) == in_b  # the same customer always gets the same arm
    with session_scope() as session:
        assert policy_for_customer(session, None)[0] == default_id
        _, policy = policy_for_customer(session, next(iter(in_b)))
        assert policy.version == V + 1

    with session_scope() as session:
        set_split(session, "default", V + 1, 60, "alice")
    wider = _arms(v2.id)
    assert in_b < wider and 550 <= len(wider) <= 650  # raising the share only adds customers

    with session_scope() as session:
        clear_split(session, "bob")
    assert _arms(v2.id) == set()
    actions = [a[1] for a in _audit()]
    assert actions[-3:] == ["policy.split", "policy.split", "policy.split_clear"]


def test_the_assignment_is_the_same_in_another_process() -> None:
    script = (
        "from dunning.policy.store import split_bucket\n"
        f"print([split_bucket(c, 'default:2') for c in {CUSTOMERS[:50]!r}])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str([split_bucket(c, "default:2") for c in CUSTOMERS[:50]])


def test_split_refusals_and_activation_ending_a_split(clean_db: None) -> None:
    with session_scope() as session:
        active_policy(session)
        apply_policy(session, policy_text(2), "alice")
    with session_scope() as session, pytest.raises(PolicyConflict, match="is the active policy"):
        set_split(session, "default", V, 10, "alice")
    with session_scope() as session, pytest.raises(InvalidRequest, match="between 0 and 100"):
        set_split(session, "default", V + 1, 101, "alice")
    with session_scope() as session, pytest.raises(PolicyNotFound):
        set_split(session, "default", 7, 10, "alice")
    with session_scope() as session:
        set_split(session, "default", V + 1, 10, "alice")
        set_split(session, "default", V + 1, 10, "alice")  # unchanged: not audited
        act = activate(session, "default", V + 1, "bob")  # arm B wins
    assert act.split is None and act.split_percent == 0
    [row] = rows("SELECT details FROM audit_log WHERE action = 'policy.activate' AND actor = 'bob'")
    assert row["details"]["split_cleared"]["percent"] == 10
    with session_scope() as session:
        set_split(session, "default", V, 0, "bob")  # percent 0 with no split: nothing to do
    assert [a[1] for a in _audit()].count("policy.split") == 1


def test_a_policy_naming_a_missing_email_template_is_refused(clean_db: None) -> None:
    text = (
        DEFAULT_POLICY_FILE.read_text()
        .replace('name = "default"', 'name = "typo"')
        .replace('template = "payment_reminder"', 'template = "payment_remindr"', 1)
    )
    with session_scope() as session, pytest.raises(PolicyError, match="payment_remindr"):
        apply_policy(session, text, cli_actor())
