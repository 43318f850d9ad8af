"""Two policy versions side by side, line against line, the changes marked.

Why by text and not by model: a policy's comments carry its reasons (the backtest
figures, the sources), and a reviewer reads those changes too.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher


@dataclass(frozen=True)
class DiffRow:
    """One row: a line of each side (None where that side has none) and the change."""

    kind: str  # same, changed, removed, added
    left_number: int | None
    left: str | None
    right_number: int | None
    right: str | None


def side_by_side(left: str, right: str) -> list[DiffRow]:
    """Rows pairing the two texts' lines; a changed block pairs its lines in order."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[DiffRow] = []
    matcher = SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [
                DiffRow("same", i + 1, a[i], j + 1, b[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            has_left, has_right = i < i2, j < j2
            kind = "changed" if has_left and has_right else "removed" if has_left else "added"
            rows.append(
                DiffRow(
                    kind,
                    i + 1 if has_left else None,
                    a[i] if has_left else None,
                    j + 1 if has_right else None,
                    b[j] if has_right else None,
                )
            )
    return rows


def changed_only(rows: list[DiffRow], context: int = 2) -> list[DiffRow | None]:
    """The changed rows with ``context`` same rows around them; None marks a gap."""
    keep: set[int] = set()
    for n, row in enumerate(rows):
        if row.kind != "same":
            keep.update(range(max(0, n - context), min(len(rows), n + context + 1)))
    out: list[DiffRow | None] = []
    last = -1
    for n in sorted(keep):
        if out and n != last + 1:
            out.append(None)
        out.append(rows[n])
        last = n
    return out
