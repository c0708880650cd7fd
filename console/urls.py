from django.contrib import admin
from django.urls import include, path

from console.throttle import throttle_admin_login
from flows.api import api

# The admin logs people in with passwords too: the same throttle as the login page.
throttle_admin_login(admin.site)

# Errors under /api/ answer JSON, like the API's own (console/errors.py).
handler400 = "console.errors.bad_request"
handler403 = "console.errors.permission_denied"
handler404 = "console.errors.page_not_found"
handler500 = "console.errors.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("", include("console.pages")),
]
