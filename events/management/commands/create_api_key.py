from django.core.management.base import BaseCommand, CommandError

from events.models import ApiKey
from events.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key. Prints only the new key on stdout, once: it is stored hashed."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="A unique name for the key (who uses it).")

    def handle(self, *args, name, **options):
        name = name.strip()
        if not name:
            raise CommandError("--name must not be blank")
        if ApiKey.objects.filter(name=name).exists():
            raise CommandError(f"an API key named {name!r} already exists")
        _, raw_key = api_key_create(name=name)
        self.stdout.write(raw_key)
        self.stderr.write(f"Created API key {name!r}. It is shown only once; store it now.")
