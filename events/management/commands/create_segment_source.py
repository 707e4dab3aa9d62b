from django.core.management.base import BaseCommand, CommandError

from events.models import SegmentSource
from events.segment import segment_source_create


class Command(BaseCommand):
    help = "Create a Segment-compatible source for /v1/*. Prints only its write key on stdout, once."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--source-tag", default="segment", help="stored as the events' source")

    def handle(self, *args, name, source_tag, **options):
        if SegmentSource.objects.filter(name=name).exists():
            raise CommandError(f"a Segment source named {name!r} already exists")
        _, write_key = segment_source_create(name=name, source_tag=source_tag)
        self.stdout.write(write_key)
        self.stderr.write(f"Created Segment source {name!r}. The write key is shown only once; store it now.")
