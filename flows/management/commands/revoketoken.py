"""`manage.py revoketoken PREFIX_OR_ID`: refuse a token from now on."""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from flows.models import ApiToken

PREFIX_LENGTH = ApiToken._meta.get_field("prefix").max_length


class Command(BaseCommand):
    help = "Revoke an API token, named by its id, its prefix (as createtoken and the admin show it) or itself."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix_or_id")

    def handle(self, *args, prefix_or_id: str, **options) -> None:
        wanted = prefix_or_id.strip().rstrip("…")
        if wanted.isdigit():
            matches = ApiToken.objects.filter(pk=int(wanted))
        elif len(wanted) > PREFIX_LENGTH:  # longer than any prefix: the token itself
            matches = ApiToken.objects.filter(digest=ApiToken.hash(wanted))
        elif len(wanted) >= 4:
            matches = ApiToken.objects.filter(prefix__startswith=wanted)
        else:
            matches = ApiToken.objects.none()
        tokens = list(matches.select_related("owner"))
        if not tokens:
            raise CommandError(
                f"no token matches {prefix_or_id!r} (give its id, or at least 4 characters of its prefix)"
            )
        if len(tokens) > 1:
            listed = ", ".join(f"{token.id} ({token.prefix}…, {token.owner})" for token in tokens)
            raise CommandError(f"{prefix_or_id!r} matches {len(tokens)} tokens: {listed}; give its id")
        token = tokens[0]
        if token.revoked_at is not None:
            self.stdout.write(
                f"Token {token.id} ({token.prefix}…, {token.owner}) was already revoked at {token.revoked_at}."
            )
            return
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        self.stdout.write(f"Revoked token {token.id} ({token.prefix}…, {token.owner}).")
