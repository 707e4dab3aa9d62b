from django.db import migrations

DEFAULT_RULES = [
    ("PAGE_VIEW", 5, "A page view on the website"),
    ("EMAIL_OPEN", 10, "An e-mail opened"),
    ("FORM_SUBMIT", 20, "A form submitted"),
    ("DEMO_REQUEST", 50, "A demo requested"),
    ("PURCHASE", 100, "A purchase"),
]


def create_defaults(apps, schema_editor):
    ScoringRule = apps.get_model("scoring", "ScoringRule")
    for event_type, points, description in DEFAULT_RULES:
        ScoringRule.objects.get_or_create(
            event_type=event_type, defaults={"points": points, "description": description, "enabled": True}
        )


def remove_defaults(apps, schema_editor):
    ScoringRule = apps.get_model("scoring", "ScoringRule")
    ScoringRule.objects.filter(event_type__in=[rule[0] for rule in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, remove_defaults)]
