"""URLs of the console's pages (CONTRACT §6)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from console import views
from console.throttle import ThrottledLoginView

urlpatterns = [
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("flows/new/", views.editor, name="flow-new"),
    path("flows/<uuid:flow_id>/", views.editor, name="flow-edit"),
    path("flows/<uuid:flow_id>/triggers/", views.flow_triggers, name="flow-triggers"),
    path("executions/", views.execution_list, name="execution-list"),
    path("executions/<uuid:execution_id>/", views.execution_detail, name="execution-detail"),
    path("batches/<uuid:batch_id>/", views.batch_detail, name="batch-detail"),
]
