"""``dunning backtest``: table, JSON, chart, sweep, and refusals (no database needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer
from typer.testing import CliRunner

from dunning.backtest.cli import backtest
from dunning.backtest.service import SHIPPED_DEFAULT
from dunning.backtest.world import CONFIG_DIR

app = typer.Typer()
app.command()(backtest)
runner = CliRunner()


def _policy(tmp_path: Path, version: int) -> Path:
    text = SHIPPED_DEFAULT.read_text(encoding="utf-8")
    file = tmp_path / f"candidate_v{version}.toml"
    file.write_text(text.replace("\nversion = 2\n", f"\nversion = {version}\n"), encoding="utf-8")
    return file


def test_an_unapplied_policy_against_the_default_prints_the_tables(tmp_path: Path) -> None:
    chart = tmp_path / "chart.svg"
    out = runner.invoke(app, [str(_policy(tmp_path, 7)), "--cases", "60", "--chart", str(chart)])
    assert out.exit_code == 0, out.output
    for name in ("default v7", "default v2", "fixed +3/+5/+7/+14", "8 over 14 days",
                 "daily for 14 days", "no retries", "insufficient_funds"):  # fmt: skip
        assert name in out.output
    assert chart.read_text(encoding="utf-8").startswith("<svg")


def test_json_and_against_a_file(tmp_path: Path) -> None:
    args = [str(_policy(tmp_path, 7)), "--against", str(_policy(tmp_path, 8)), "--cases", "40"]
    out = runner.invoke(app, [*args, "--json", "--seed", "5"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["seed"] == 5 and data["subject"] == "default v7"
    [world] = data["worlds"]
    assert [p["policy"] for p in world["policies"]][:2] == ["default v7", "default v8"]
    assert set(world["goal"]) >= {"money_x_fixed", "retries_x_fixed", "violations", "passed"}


def test_sweep_runs_every_world_of_the_folder(tmp_path: Path) -> None:
    for name in ("default.toml", "half_money.toml"):
        shutil.copy(CONFIG_DIR / name, tmp_path / name)
    out = runner.invoke(
        app,
        [str(SHIPPED_DEFAULT), "--sweep", "--world", str(tmp_path / "default.toml"),
         "--cases", "30", "--no-classes"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "== world default" in out.output and "== world half_money" in out.output
    assert "goal for default v2" in out.output


def test_refusals(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n", encoding="utf-8")
    out = runner.invoke(app, [str(bad)])
    assert out.exit_code == 1 and "invalid retry policy" in out.output
    out = runner.invoke(app, [str(SHIPPED_DEFAULT), "--from-ledger"])
    assert out.exit_code == 1 and "--since" in out.output
    out = runner.invoke(app, [str(SHIPPED_DEFAULT), "--since", "June"])
    assert out.exit_code == 2


def test_the_service_command_has_it() -> None:
    from dunning.cli import app as service_app

    names = {c.name for c in service_app.registered_commands}
    assert "backtest" in names
