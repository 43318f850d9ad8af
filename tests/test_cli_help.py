"""Every ``--help`` of the ``dunning`` command reads as terminal text, not as source markup.

Help comes from command docstrings and option help strings, which are also read as
Python docstrings; reStructuredText literals (double backticks) or roles (``:class:``)
there print verbatim in a terminal. Pure: nothing is run but the help.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from dunning.cli import app

MARKUP = re.compile(r"``|:(class|func|meth|mod|data|attr|ref):`")


def _paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group, depth first (typer groups have ``commands``)."""
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _paths(sub, (*path, name))


COMMANDS = list(_paths(typer.main.get_command(app)))


def test_the_walk_finds_the_nested_commands() -> None:
    assert ("report", "csv") in COMMANDS and ("policy", "preview") in COMMANDS
    assert len(COMMANDS) > 25


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "dunning")
def test_help_has_no_source_markup(path: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "Usage:" in shown.output
    found = [line.strip() for line in shown.output.splitlines() if MARKUP.search(line)]
    assert found == [], f"dunning {' '.join(path)} --help shows markup: {found}"
