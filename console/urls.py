from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from console.throttle import throttle_admin_login
from console.views import api_without_slash
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
    path("api", api_without_slash),  # else APPEND_SLASH answers an HTML 301 to /api/, itself a 404
    # The language switcher posts to i18n/setlang/ (a cookie remembers the choice); the pages' scripts
    # read their strings from the catalog (djangojs.po) served at jsi18n/.
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(domain="djangojs"), name="javascript-catalog"),
    path("", include("console.pages")),
]
