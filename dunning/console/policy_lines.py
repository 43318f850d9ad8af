"""Where in a policy's TOML each validation problem is, so the editor shows it there.

``PolicyError`` carries the CLI's messages, each starting with the dotted path of the
key (``classes.hard.action: …``, ``email_steps.2.template: …``) or, for TOML syntax,
ending with ``(at line N, column M)``. This module reads the text once, notes the line
of every table header and key (inline tables and ``[[arrays]]`` included), and gives
each message the line of the longest path it names; a missing key points at its table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOML_LINE = re.compile(r"at line (\d+)")
_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")


@dataclass(frozen=True)
class Problem:
    """One message of the validator, with its line (None: about the whole policy)."""

    message: str
    line: int | None


def _parts(dotted: str) -> list[str]:
    return [p.strip().strip("\"'") for p in dotted.split(".") if p.strip()]


def key_lines(text: str) -> dict[str, int]:
    """Dotted path -> 1-based line of every table, array item and key in ``text``."""
    lines: dict[str, int] = {}
    prefix: list[str] = []
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if array := _ARRAY.match(line):
            name = ".".join(_parts(array.group(1)))
            index = counts.get(name, 0)
            counts[name] = index + 1
            prefix = [*_parts(array.group(1)), str(index)]
            lines.setdefault(".".join(prefix), number)
            lines.setdefault(name, number)
            continue
        if table := _TABLE.match(line):
            prefix = _parts(table.group(1))
            for end in range(1, len(prefix) + 1):
                lines.setdefault(".".join(prefix[:end]), number)
            continue
        if key := _KEY.match(line):
            path = [*prefix, *_parts(key.group(1))]
            lines.setdefault(".".join(path), number)
            rest = line[key.end() :]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(rest):
                    lines.setdefault(".".join([*path, inner.group(1)]), number)
    return lines


def locate(text: str, messages: list[str]) -> list[Problem]:
    """Each message with the line it is about, when the text says where."""
    known = key_lines(text)
    out: list[Problem] = []
    for message in messages:
        if found := _TOML_LINE.search(message):
            out.append(Problem(message, int(found.group(1))))
            continue
        path = message.split(":", 1)[0].strip()
        parts = path.split(".") if path and " " not in path else []
        line = None
        for end in range(len(parts), 0, -1):
            line = known.get(".".join(parts[:end]))
            if line is not None:
                break
        out.append(Problem(message, line))
    return out


@dataclass(frozen=True)
class SourceLine:
    number: int
    text: str
    problems: list[str]


def annotated(text: str, problems: list[Problem], context: int = 3) -> list[SourceLine | None]:
    """The lines with problems, each with its messages and ``context`` lines around it;
    None marks lines left out."""
    by_line: dict[int, list[str]] = {}
    for p in problems:
        if p.line is not None:
            by_line.setdefault(p.line, []).append(p.message)
    lines = text.splitlines() or [""]
    keep = {
        n
        for line in by_line
        for n in range(max(1, line - context), min(len(lines), line + context) + 1)
    }
    out: list[SourceLine | None] = []
    for n in sorted(keep):
        if out and out[-1] is not None and out[-1].number != n - 1:
            out.append(None)
        out.append(SourceLine(n, lines[n - 1], by_line.get(n, [])))
    return out
