import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from events.models import ApiKey
from events.services import api_key_create


class Command(BaseCommand):
    help = "First run: create an admin user and an API key if none exist, and print them once."

    def handle(self, *args, **options):
        User = get_user_model()
        lines = []
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@localhost", password)
            lines.append(f"  Admin user:  admin / {password}   (log in at /accounts/login/ or /admin/)")
        if not ApiKey.objects.exists():
            _, raw_key = api_key_create(name="default")
            lines.append(f"  API key:     {raw_key}")
            lines.append(f"  export TARGETGRID_API_KEY={raw_key}")
        if lines:
            banner = "=" * 78
            self.stdout.write("\n".join([banner, "  TargetGrid first run - these are shown only once:", *lines, banner]))
