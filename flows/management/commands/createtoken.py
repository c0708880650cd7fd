"""`manage.py createtoken USERNAME [--name N]`: issue an API token; the token alone is the last line."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flows.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it (once: only its SHA-256 is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for, to tell tokens apart later")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive; its tokens would be refused")
        row, token = ApiToken.issue(user, name=name)
        self.stdout.write(
            f"Token {row.id} ({row.prefix}…) for {username}. It is shown only now; send it as "
            "'Authorization: Bearer <token>'. Revoke it with: manage.py revoketoken " + row.prefix
        )
        # Alone on the last line, so scripts can take it with `tail -n 1`.
        self.stdout.write(token)
