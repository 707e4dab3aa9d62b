from events.exports import events_export_rows

from ._export import ExportCommand


class Command(ExportCommand):
    help = "Stream every event as CSV (import column order; formula-safe) or NDJSON to a file or stdout."
    what = "events"

    def rows(self):
        return events_export_rows()
