"""``/api/reports/…``: every report table as JSON (OpenAPI schemas) or CSV (``?format=csv``).

Read access: an API key with role ``finance`` or ``ops``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel

from dunning.admin.auth import ReaderActor
from dunning.http import Day, DbText, Instant
from dunning.reports.csvio import to_csv
from dunning.reports.schemas import Filters, Table
from dunning.reports.tables import TABLES, ReportTable, compute, filters, last_full_month

router = APIRouter(prefix="/api/reports", tags=["reports"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def report_filters(
    start: date | None, end: date | None, currency: str | None, segment: str | None
) -> Filters:
    """Filters from query parameters (last full month by default); 422 when invalid."""
    default_start, default_end = last_full_month()
    try:
        return filters(start or default_start, end or default_end, currency, segment)
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None


def csv_response(table: ReportTable, f: Filters, rows: list[BaseModel]) -> Response:
    """A CSV download of ``rows``."""
    name = f"{table.name.replace('/', '-')}_{f.start}_{f.end}.csv"
    return Response(
        to_csv(table.row, rows),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class TableInfo(BaseModel):
    name: str
    title: str
    path: str


@router.get("", response_model=list[TableInfo])
def list_tables(actor: ReaderActor) -> list[TableInfo]:
    """Every report table and its path."""
    return [
        TableInfo(name=t.name, title=t.title, path=f"/api/reports/{t.name}")
        for t in TABLES.values()
    ]


def _endpoint(table: ReportTable) -> Callable[..., Any]:
    def endpoint(
        actor: ReaderActor,
        start: Annotated[
            Day | None, Query(alias="from", description="first day (default: last month's)")
        ] = None,
        end: Annotated[
            Day | None, Query(alias="to", description="day after the period (exclusive)")
        ] = None,
        currency: Annotated[DbText | None, Query(description="e.g. usd")] = None,
        segment: Annotated[DbText | None, Query(description="customer segment")] = None,
        format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
        as_of: Annotated[
            Instant | None, Query(description="'now' of the at-risk tables (default: now)")
        ] = None,
    ) -> Any:
        f = report_filters(start, end, currency, segment)
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
        rows = compute(table.name, f, as_of)
        if format == "csv":
            return csv_response(table, f, rows)
        return Table[table.row](  # type: ignore[name-defined]
            filters=f, generated_at=datetime.now(UTC), rows=rows
        )

    endpoint.__doc__ = f"{table.title}. `?format=csv` for CSV."
    return endpoint


for _table in TABLES.values():
    router.add_api_route(
        f"/{_table.name}",
        _endpoint(_table),
        methods=["GET"],
        response_model=Table[_table.row],  # type: ignore[name-defined]
        summary=_table.title,
        name=f"report_{_table.name.replace('/', '_').replace('-', '_')}",
        operation_id=f"report_{_table.name.replace('/', '_').replace('-', '_')}",
        responses={200: {"content": {"text/csv": {}}}},
    )
