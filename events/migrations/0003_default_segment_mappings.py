from django.db import migrations

# Segment's spec'd event names (https://segment.com/docs/connections/spec/) for the default rules.
DEFAULT_MAPPINGS = [
    ("Demo Requested", "DEMO_REQUEST"),
    ("Form Submitted", "FORM_SUBMIT"),
    ("Email Opened", "EMAIL_OPEN"),
    ("Order Completed", "PURCHASE"),
]


def create_defaults(apps, schema_editor):
    Mapping = apps.get_model("events", "SegmentEventMapping")
    for event_name, event_type in DEFAULT_MAPPINGS:
        Mapping.objects.get_or_create(event_name=event_name, defaults={"event_type": event_type})


def remove_defaults(apps, schema_editor):
    Mapping = apps.get_model("events", "SegmentEventMapping")
    Mapping.objects.filter(event_name__in=[name for name, _ in DEFAULT_MAPPINGS]).delete()


class Migration(migrations.Migration):
    dependencies = [("events", "0002_ingest_adapters")]
    operations = [migrations.RunPython(create_defaults, remove_defaults)]
