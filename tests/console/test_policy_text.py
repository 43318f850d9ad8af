"""Pure: where the validator's messages point in a policy's TOML, and the side-by-side
diff of two versions."""

from __future__ import annotations

import pytest

from dunning.console.policy_diff import changed_only, side_by_side
from dunning.console.policy_lines import annotated, key_lines, locate
from dunning.policy.activation import DEFAULT_POLICY_FILE
from dunning.policy.models import PolicyError, parse_policy

TEXT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")


def _line(text: str, content: str) -> int:
    return text.splitlines().index(content) + 1


def _problems(text: str) -> list[tuple[str, int | None]]:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, source="test")
    return [(p.message, p.line) for p in locate(text, refused.value.problems)]


def test_every_key_table_inline_key_and_array_item_has_its_line() -> None:
    lines = key_lines(TEXT)
    assert lines["limits.max_attempts"] == _line(TEXT, "max_attempts = 5")
    assert lines["timing.retry_hours.end"] == _line(TEXT, "retry_hours = { start = 9, end = 18 }")
    assert lines["classes.hard"] == _line(TEXT, "[classes.hard]")
    assert lines["email_steps.0"] < lines["email_steps.0.template"] < lines["email_steps.1"]


def test_messages_point_at_their_line_or_their_table_or_nowhere() -> None:
    bad = (
        TEXT.replace("max_attempts = 5", "max_attempts = 0")
        .replace("[classes.hard]\n", "[classes.hard]\nbogus = 1\n")
        .replace('\nname = "default"\n', "\n")
    )
    found = dict(_problems(bad))
    assert found["limits.max_attempts: Input should be greater than or equal to 1 (got 0)"] == (
        _line(bad, "max_attempts = 0")
    )
    assert found["classes.hard.bogus: Extra inputs are not permitted"] == _line(bad, "bogus = 1")
    assert found["name: Field required"] is None  # a missing top-level key: the whole policy
    no_days = TEXT.replace("max_days = 28\n", "")
    assert dict(_problems(no_days))["limits.max_days: Field required"] == _line(TEXT, "[limits]")
    unclosed = TEXT.replace("max_days = 28", "max_days = [28")
    [(message, line)] = _problems(unclosed)
    assert message.startswith("not valid TOML") and "(at line" in message
    assert line is not None and line > _line(unclosed, "max_days = [28")  # where TOML noticed


def test_the_annotated_excerpt_keeps_context_around_each_problem() -> None:
    bad = TEXT.replace("max_attempts = 5", "max_attempts = 0")
    [(message, line)] = _problems(bad)
    assert line is not None
    shown = annotated(bad, [p for p in locate(bad, [message])], context=2)
    assert [s.number for s in shown if s] == list(range(line - 2, line + 3))
    assert [s.problems for s in shown if s and s.number == line] == [[message]]


def test_the_diff_pairs_changed_lines_and_keeps_context() -> None:
    new = TEXT.replace("version = 2", "version = 3").replace("max_days = 28", "max_days = 21")
    rows = side_by_side(TEXT, new + "# added\n")
    assert [(r.left, r.right) for r in rows if r.kind == "changed"] == [
        ("version = 2", "version = 3"),
        ("max_days = 28", "max_days = 21"),
    ]
    assert [r.right for r in rows if r.kind == "added"] == ["# added"]
    short = changed_only(rows, context=1)
    assert None in short and len(short) < 15
