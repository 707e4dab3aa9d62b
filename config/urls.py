from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from .errors import api_not_found
from .health import health, ready

handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"

api_patterns = [
    path("", include("leads.urls")),
    path("", include("events.urls")),
    path("", include("scoring.urls")),
    path("", include("realtime.urls")),
    re_path(r"^.*$", api_not_found),
]

urlpatterns = [
    path("health", health, name="health"),
    path("health/", health),
    path("health/ready", ready, name="health-ready"),
    path("health/ready/", ready),
    path("api/", include(api_patterns)),
    path("webhooks/", include("events.urls_webhooks")),
    path("v1/", include("events.urls_segment")),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Operator pages (server-rendered, staff only).
    path("", include("leads.urls_pages")),
    path("", include("events.urls_pages")),
    path("", include("scoring.urls_pages")),
    path("", include("realtime.urls_pages")),
]
