"""CSV of any report table, and reading it back (the export round-trips exactly).

One header row with the row model's field names; empty cell = null; floats written with
Python's shortest round-tripping repr, dates and times in ISO 8601.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


def to_csv(model: type[BaseModel], rows: Sequence[BaseModel]) -> str:
    """The rows as CSV text, columns in the model's field order."""
    fields = list(model.model_fields)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for row in rows:
        data = row.model_dump()
        writer.writerow([_cell(data[name]) for name in fields])
    return out.getvalue()


def from_csv(model: type[M], content: str) -> list[M]:
    """Parse CSV written by ``to_csv`` back into rows of ``model``."""
    reader = csv.DictReader(io.StringIO(content))
    expected = list(model.model_fields)
    if reader.fieldnames != expected:
        raise ValueError(f"CSV columns {reader.fieldnames} are not {expected}")
    return [
        model.model_validate({k: (None if v == "" else v) for k, v in record.items()})
        for record in reader
    ]
