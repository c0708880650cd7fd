from django.contrib import admin
from django.urls import include, path

from console.throttle import ThrottledAdminAuthenticationForm
from flows.api import api

# The admin logs people in with passwords too: the same throttle as the login page.
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("", include("console.pages")),
]
