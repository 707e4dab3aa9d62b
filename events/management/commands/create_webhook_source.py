from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from events.models import WebhookSource
from events.services import webhook_source_create


class Command(BaseCommand):
    help = (
        "Create a webhook source for POST /webhooks/events?source=NAME. Prints only its secret on stdout "
        "(Standard Webhooks whsec_… signing secret, or the shared-secret header value)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--mode", choices=[m.value for m in WebhookSource.Mode], default="signed")
        parser.add_argument("--header", default="X-Webhook-Secret", help="shared_secret mode: the header name")
        parser.add_argument("--event-types", default="", help="comma-separated allow-list (default: all)")
        parser.add_argument("--source-tag", default="webhook", help="stored as the events' source")

    def handle(self, *args, name, mode, header, event_types, source_tag, **options):
        if WebhookSource.objects.filter(name=name).exists():
            raise CommandError(f"a webhook source named {name!r} already exists")
        try:
            source = webhook_source_create(
                name=name,
                mode=mode,
                secret_header=header,
                allowed_event_types=event_types.split(","),
                source_tag=source_tag,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(source.secret)
        how = "sign deliveries with it (Standard Webhooks)" if mode == "signed" else f"send it in the {header} header"
        self.stderr.write(f"Created webhook source {name!r}: {how}; POST /webhooks/events?source={name}")
