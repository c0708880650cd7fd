"""Login throttling: after `LOGIN_ATTEMPTS_PER_MINUTE` failed logins for one username from one address,
further attempts (right or wrong) are refused with 429 until the minute is over, on the login page
and the admin's alike.

The counter is keyed by the user name as authentication reads it: stripped, Unicode NFKC (as Django's
login form folds it, so `ｃarol` is `carol`), the user model's own `normalize_username`, then
case-folded, so no other spelling of a name gets fresh attempts.

Counters live in Django's cache (the default per-process memory cache; configure a shared cache, such as
Redis, when several server processes answer logins). A successful login clears its counter.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

WINDOW_SECONDS = 60


def throttle_name(username: str) -> str:
    """Return the user name as authentication would read it, case-folded: one counter for every spelling."""
    folded = unicodedata.normalize("NFKC", username.strip())
    return get_user_model().normalize_username(folded).casefold()


class LoginThrottle:
    """Count failed logins per (username, client address) in fixed one-minute windows."""

    def __init__(self, request: HttpRequest | None, username: str) -> None:
        address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
        digest = hashlib.sha256(f"{throttle_name(username)}\x00{address}".encode()).hexdigest()
        self.key = f"tileflow:login-failures:{digest}"
        self.started_key = f"{self.key}:started"

    @staticmethod
    def limit() -> int:
        return settings.TILEFLOW["LOGIN_ATTEMPTS_PER_MINUTE"]

    def blocked(self) -> bool:
        """Tell whether this username and address have used up their failed attempts for now."""
        return cache.get(self.key, 0) >= self.limit()

    def retry_after(self) -> int:
        """Return the seconds until the current window ends."""
        started = cache.get(self.started_key)
        if started is None:
            return WINDOW_SECONDS
        return max(1, int(started + WINDOW_SECONDS - time.time()) + 1)

    def failed(self) -> None:
        """Count one failed attempt."""
        if cache.add(self.key, 1, WINDOW_SECONDS):
            cache.set(self.started_key, time.time(), WINDOW_SECONDS)
            return
        try:
            cache.incr(self.key)
        except ValueError:  # the window expired between add() and incr()
            cache.add(self.key, 1, WINDOW_SECONDS)

    def succeeded(self) -> None:
        cache.delete_many([self.key, self.started_key])


class ThrottledLoginMixin:
    """For an AuthenticationForm: refuse before checking the password when the counter is full."""

    throttle_message = "Too many failed login attempts. Try again in {seconds} seconds."
    throttled = False

    def clean(self) -> dict[str, Any]:
        throttle = LoginThrottle(self.request, self.data.get("username") or "")
        if throttle.blocked():
            self.throttled = True
            self.retry_after = throttle.retry_after()
            raise ValidationError(self.throttle_message.format(seconds=self.retry_after), code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            throttle.failed()
            raise
        throttle.succeeded()
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The console's login form, throttled."""


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's login form, throttled with the same counters."""


def _refuse_if_throttled(response: HttpResponse, form: Any) -> HttpResponse:
    if getattr(form, "throttled", False):
        response.status_code = 429
        response["Retry-After"] = str(form.retry_after)
    return response


class ThrottledLoginView(LoginView):
    """The login page; a throttled attempt answers 429 with Retry-After and says why."""

    form_class = ThrottledAuthenticationForm

    def form_invalid(self, form: ThrottledAuthenticationForm) -> HttpResponse:
        return _refuse_if_throttled(super().form_invalid(form), form)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        if form is not None and getattr(form, "throttled", False):
            context["throttled"] = form.non_field_errors()[0]
        return context


def throttle_admin_login(site: AdminSite) -> None:
    """Give the admin's login the same counters, and the same 429 with Retry-After (before `site.urls`)."""
    site.login_form = ThrottledAdminAuthenticationForm
    login = site.login
    if getattr(login, "throttled", False):
        return

    @wraps(login)
    def throttled_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        return _refuse_if_throttled(response, form)

    throttled_login.throttled = True
    site.login = throttled_login
