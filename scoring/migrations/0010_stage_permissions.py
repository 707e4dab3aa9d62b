"""Operators edit the stages (add/change) and the stage settings (the score thresholds), as they
edit the draft's rules; both roles see the stages, the stage settings and the stage-change audit.
Deleting a stage stays with superusers (as deleting a rule)."""

from django.db import migrations

VIEW = [("scoring", "stage"), ("scoring", "stagesettings"), ("scoring", "stagechange")]
OPERATE = [
    ("add", "scoring", "stage"),
    ("change", "scoring", "stage"),
    ("change", "scoring", "stagesettings"),
]
GROUPS = {
    "Viewers": [("view", app, model) for app, model in VIEW],
    "Operators": [("view", app, model) for app, model in VIEW] + OPERATE,
}


def grant(apps, schema_editor):
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    create_permissions(global_apps.get_app_config("scoring"), apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue
        group.permissions.add(*[
            Permission.objects.get(content_type__app_label=app, codename=f"{action}_{model}")
            for action, app, model in wanted
        ])


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue
        group.permissions.remove(*Permission.objects.filter(
            codename__in=[f"{action}_{model}" for action, _app, model in wanted], content_type__app_label="scoring"
        ))


class Migration(migrations.Migration):
    dependencies = [("scoring", "0009_default_stages"), ("leads", "0002_operator_groups")]
    operations = [migrations.RunPython(grant, revoke)]
