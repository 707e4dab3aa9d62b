"""Streaming exports (CSV, NDJSON) of events, leads and import error reports.

CSV cells are safe to open in a spreadsheet: a text cell starting with ``=``, ``+``, ``-``, ``@``
(or a tab / carriage return, which some spreadsheets strip before evaluating) is prefixed with a
single quote, so it is shown as text and never evaluated as a formula (OWASP "CSV injection").
Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_CHUNK = 2000


def csv_cell(value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"), sort_keys=True)
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    def write(self, value):
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """CSV text line by line (for StreamingHttpResponse and files alike)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


def ndjson_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    for row in rows:
        record = {}
        for name, value in zip(header, row):
            record[name] = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else (
                str(value) if value is not None and not isinstance(value, (int, float, bool, dict, list, str)) else value)
        yield json.dumps(record, separators=(",", ":")) + "\n"


EVENT_COLUMNS = ["event_id", "event_type", "timestamp", "lead_id", "email", "metadata", "status", "points",
                 "score_after", "late", "source", "received_at"]
LEAD_COLUMNS = ["id", "email", "first_name", "last_name", "company", "phone", "current_score", "max_score",
                "created_at", "updated_at"]
IMPORT_ERROR_COLUMNS = ["row", "event_id", "field", "message"]


def events_export_rows() -> tuple[list[str], Iterator[tuple]]:
    """Every event, oldest first, in the import's column order (an export re-imports as is)."""
    from .models import Event

    rows = (
        Event.objects.order_by("timestamp", "event_id")
        .values_list("event_id", "event_type", "timestamp", "lead_id", "lead__email", "metadata", "status", "points",
                     "score_after", "late", "source", "received_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    return EVENT_COLUMNS, rows


def leads_export_rows() -> tuple[list[str], Iterator[tuple]]:
    from leads.models import Lead

    return LEAD_COLUMNS, Lead.objects.order_by("created_at", "id").values_list(*LEAD_COLUMNS).iterator(
        chunk_size=EXPORT_CHUNK)


def import_errors_rows(*, job_id: int) -> tuple[list[str], Iterator[tuple]]:
    from .models import ImportRowError

    rows = (ImportRowError.objects.filter(job_id=job_id).order_by("row", "id")
            .values_list(*IMPORT_ERROR_COLUMNS).iterator(chunk_size=EXPORT_CHUNK))
    return IMPORT_ERROR_COLUMNS, rows
