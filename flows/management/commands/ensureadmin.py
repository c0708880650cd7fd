"""`manage.py ensureadmin`: make sure someone can log in, without ever using a fixed password."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEFAULT_LOGIN_URL = "http://127.0.0.1:8000/login/"
USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create the superuser 'admin' if there is no superuser, with TILEFLOW_ADMIN_PASSWORD or a random "
        "password, and print how to log in."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default=DEFAULT_LOGIN_URL, help="the login address to print")

    def handle(self, *args, **options) -> None:
        login_url = options["url"]
        user_model = get_user_model()
        existing = user_model._default_manager.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            name = existing.get_username()
            self.stdout.write(
                f"Superuser {name!r} exists; log in at {login_url} (its password was printed on the first run). "
                f"Forgot it? Run: python manage.py changepassword {name}"
            )
            return
        if user_model._default_manager.filter(**{user_model.USERNAME_FIELD: USERNAME}).exists():
            # Never take over an ordinary account that happens to be called admin.
            self.stderr.write(
                f"No superuser exists, and the user {USERNAME!r} is an ordinary account: "
                "create one with: python manage.py createsuperuser"
            )
            return
        configured = os.environ.get("TILEFLOW_ADMIN_PASSWORD", "")
        password = configured or secrets.token_urlsafe(12)
        user_model._default_manager.create_superuser(USERNAME, email="", password=password)
        origin = "from TILEFLOW_ADMIN_PASSWORD" if configured else "generated; shown only this once"
        banner = "=" * 64
        self.stdout.write(
            "\n".join(
                [
                    banner,
                    "Tileflow: created the administrator account.",
                    f"  Log in at: {login_url}",
                    f"  User:      {USERNAME}",
                    f"  Password:  {password}   ({origin})",
                    f"  Change it: python manage.py changepassword {USERNAME}",
                    banner,
                ]
            )
        )
