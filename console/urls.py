from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from console.throttle import ThrottledAdminAuthenticationForm
from flows.api import api

# The admin logs people in with passwords too: the same throttle as the login page.
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    # The language switcher posts to i18n/setlang/ (a cookie remembers the choice); the pages' scripts
    # read their strings from the catalog (djangojs.po) served at jsi18n/.
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(domain="djangojs"), name="javascript-catalog"),
    path("", include("console.pages")),
]
