"""``dunning policy`` through typer's runner, against the test database."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dunning.admin.actors import cli_actor
from dunning.cli import app
from tests.support.admin import policy_text, shipped_version
from tests.support.ledger import rows

runner = CliRunner()

V = shipped_version()  # the shipped default policy's version: installed first


def _write(folder: Path, text: str, name: str = "policy.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_apply_list_show_activate_split(clean_db: None, tmp_path: Path) -> None:
    v2 = _write(tmp_path, policy_text(2, max_attempts=5))
    applied = runner.invoke(app, ["policy", "apply", str(v2)])
    assert applied.exit_code == 0, applied.output
    assert f"stored default v{V + 1}" in applied.stdout
    assert f"dunning policy activate default {V + 1}" in applied.stdout
    again = runner.invoke(app, ["policy", "apply", str(v2)])
    assert again.exit_code == 0 and "nothing changed" in again.stdout

    listed = runner.invoke(app, ["policy", "list"])
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert any(line.split()[:4] == ["default", str(V), "active", "100%"] for line in lines)
    assert any(line.split()[:4] == ["default", str(V + 1), "inactive", "0%"] for line in lines)

    shown = runner.invoke(app, ["policy", "show", "default"])  # the latest version
    assert shown.exit_code == 0
    assert f"# default v{V + 1}" in shown.stdout and "max_attempts = 5" in shown.stdout

    activated = runner.invoke(app, ["policy", "activate", "default", str(V + 1)])
    assert activated.exit_code == 0 and f"active: default v{V + 1}" in activated.stdout
    split = runner.invoke(app, ["policy", "split", "default", str(V), "20"])
    assert split.exit_code == 0
    assert f"split: default v{V} for 20% of customers" in split.stdout
    assert runner.invoke(app, ["policy", "split", "default", str(V), "0"]).exit_code == 0

    by_cli = rows("SELECT action FROM audit_log WHERE actor = :a ORDER BY id", a=cli_actor())
    assert [r["action"] for r in by_cli] == [
        "policy.apply",
        "policy.activate",
        "policy.split",
        "policy.split_clear",
    ]


def test_refusals_are_readable(clean_db: None, tmp_path: Path) -> None:
    bad = _write(tmp_path, policy_text(2).replace("max_days = 28", "max_days = 400"))
    refused = runner.invoke(app, ["policy", "apply", str(bad)])
    assert refused.exit_code == 1
    assert "limits.max_days" in refused.stderr and str(bad) in refused.stderr

    assert (
        runner.invoke(app, ["policy", "apply", str(_write(tmp_path, policy_text(2)))]).exit_code
        == 0
    )
    changed = _write(tmp_path, policy_text(2, max_attempts=3), "changed.toml")
    conflict = runner.invoke(app, ["policy", "apply", str(changed)])
    assert conflict.exit_code == 1 and "bump `version`" in conflict.stderr

    missing = runner.invoke(app, ["policy", "activate", "default", "9"])
    assert missing.exit_code == 1 and "no stored policy default v9" in missing.stderr
    assert runner.invoke(app, ["policy", "split", "default", "2", "101"]).exit_code == 2


def test_preview_prints_the_schedule_in_local_time(clean_db: None, tmp_path: Path) -> None:
    args = ["policy", "preview", "--decline-code", "insufficient_funds", "--brand", "visa",
            "--time-zone", "America/New_York", "--failed-at", "2025-03-03T14:00Z"]  # fmt: skip
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert f"policy default v{V} · insufficient_funds · visa · America/New_York" in out
    assert "first failure Mon 2025-03-03 09:00 EST (2025-03-03 14:00 UTC)" in out
    kinds = {"retry", "wait_for_card", "customer_action", "give_up"}
    rows_ = [line.split() for line in out.splitlines() if line.split()[1:2] in ([k] for k in kinds)]
    assert rows_[0][:6] == ["2", "retry", "Fri", "2025-03-07", "09:00", "EST"]
    assert rows_[0][6:] == ["2025-03-07", "14:00"]
    assert rows_[-1][1] == "give_up", out

    file = _write(tmp_path, policy_text(3, max_attempts=2))
    from_file = runner.invoke(app, [*args[:2], "--file", str(file), *args[2:]])
    assert from_file.exit_code == 0 and f"policy default v{V + 2}" in from_file.stdout
    stored = rows("SELECT id FROM retry_policies WHERE version = :v", v=V + 2)
    assert stored == []  # preview stores nothing

    bad_zone = runner.invoke(app, ["policy", "preview", "--time-zone", "Mars/Olympus"])
    assert bad_zone.exit_code == 1 and "unknown time zone" in bad_zone.stderr
    bad_time = runner.invoke(app, ["policy", "preview", "--failed-at", "yesterday"])
    assert bad_time.exit_code == 2
