"""Shared by export_events and export_leads: stream rows as CSV or NDJSON to a file or stdout."""

from django.core.management.base import BaseCommand

from events.exports import csv_lines, ndjson_lines


class ExportCommand(BaseCommand):
    what = ""

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["csv", "ndjson"], default="csv")
        parser.add_argument("-o", "--output", default="-", help="A file path, or - for stdout (default).")

    def rows(self):
        raise NotImplementedError

    def handle(self, *args, format="csv", output="-", **options):
        header, rows = self.rows()
        lines = csv_lines(header, rows) if format == "csv" else ndjson_lines(header, rows)
        count = -1 if format == "csv" else 0
        if output == "-":
            for line in lines:
                self.stdout.write(line, ending="")
                count += 1
        else:
            with open(output, "w", newline="", encoding="utf-8") as out:
                for line in lines:
                    out.write(line)
                    count += 1
        self.stderr.write(f"Exported {count:,} {self.what}.")
