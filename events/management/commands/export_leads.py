from events.exports import leads_export_rows

from ._export import ExportCommand


class Command(ExportCommand):
    help = "Stream every lead as CSV (formula-safe) or NDJSON to a file or stdout."
    what = "leads"

    def rows(self):
        return leads_export_rows()
