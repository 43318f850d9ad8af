"""``dunning keys`` through typer's runner, against the test database."""

from __future__ import annotations

import hashlib

from typer.testing import CliRunner

from dunning.admin.actors import cli_actor
from dunning.cli import app
from tests.support.ledger import rows

runner = CliRunner()


def test_create_list_revoke(clean_db: None) -> None:
    created = runner.invoke(app, ["keys", "create", "finance-bot", "--role", "finance"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("dk_finance_")
    assert "cannot be shown again" in created.stderr
    [row] = rows("SELECT key_hash, role FROM api_keys")
    assert row == {"key_hash": hashlib.sha256(key.encode()).hexdigest(), "role": "finance"}

    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0
    assert "finance-bot" in listed.stdout and key[:19] in listed.stdout
    assert key not in listed.stdout

    assert runner.invoke(app, ["keys", "revoke", "finance-bot"]).exit_code == 0
    assert "revoked 20" in runner.invoke(app, ["keys", "list"]).stdout
    again = runner.invoke(app, ["keys", "revoke", "finance-bot"])
    assert again.exit_code == 0 and "already revoked" in again.stdout

    audit = rows("SELECT actor, action FROM audit_log ORDER BY id")
    assert audit == [
        {"actor": cli_actor(), "action": "api_key.create"},
        {"actor": cli_actor(), "action": "api_key.revoke"},
    ]
    assert cli_actor().startswith("cli:")


def test_refusals_exit_non_zero(clean_db: None) -> None:
    assert runner.invoke(app, ["keys", "create", "a", "--role", "ops"]).exit_code == 0
    duplicate = runner.invoke(app, ["keys", "create", "a", "--role", "ops"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr
    bad_role = runner.invoke(app, ["keys", "create", "b", "--role", "admin"])
    assert bad_role.exit_code == 1 and "unknown role" in bad_role.stderr
    missing = runner.invoke(app, ["keys", "revoke", "nobody"])
    assert missing.exit_code == 1 and "no API key" in missing.stderr
