"""The two operator roles, as Django groups (staff users are put in one of them):

* Viewers   - see every page and the admin read-only; cannot change rules, leads or events.
* Operators - also add and change leads, change and add scoring rules (incl. import), re-enqueue
              pending events (change event) and see API keys.

Superusers have every permission regardless. ``manage.py create_viewer USERNAME`` makes a viewer.
"""

from django.db import migrations

VIEW = [
    ("leads", "lead"),
    ("events", "event"),
    ("scoring", "scoringrule"),
    ("scoring", "scorechange"),
]
GROUPS = {
    "Viewers": [("view", app, model) for app, model in VIEW],
    "Operators": [("view", app, model) for app, model in VIEW]
    + [
        ("add", "leads", "lead"),
        ("change", "leads", "lead"),
        ("add", "scoring", "scoringrule"),
        ("change", "scoring", "scoringrule"),
        ("change", "events", "event"),
        ("view", "events", "apikey"),
    ],
}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); make sure they exist now.
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    for app_config in global_apps.get_app_configs():
        original = app_config.models_module
        app_config.models_module = original or True  # create_permissions skips apps without models
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = [
            Permission.objects.get(content_type__app_label=app, codename=f"{action}_{model}")
            for action, app, model in wanted
        ]
        group.permissions.set(perms)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0001_initial"),
        ("events", "0001_initial"),
        ("scoring", "0003_scorechange_event_optional"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_groups, remove_groups)]
