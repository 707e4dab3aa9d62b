import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create a read-only staff user in the Viewers group (or --group Operators). Prints a generated "
        "password once unless --password is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password", default=None, help="Default: a random one, printed once.")
        parser.add_argument("--group", default="Viewers", choices=["Viewers", "Operators"])

    def handle(self, *args, username, email, password, group, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"a user named {username!r} already exists")
        try:
            role = Group.objects.get(name=group)
        except Group.DoesNotExist:
            raise CommandError(f"the {group!r} group does not exist: run manage.py migrate") from None
        shown = password is None
        password = password or secrets.token_urlsafe(12)
        user = User.objects.create_user(username, email, password, is_staff=True)
        user.groups.add(role)
        self.stdout.write(f"Created {group[:-1].lower()} {username!r}" + (f" with password: {password}" if shown else "."))
