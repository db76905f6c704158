"""URL routes: the workspace API, the admin, /metrics and the proxy's token check."""

from django.contrib import admin
from django.urls import include, path

from molecule import pages
from molecule.views import activity, internal, registry
from pending_uploads import views as upload_views

urlpatterns = [
    path("registry/register", registry.register, name="registry-register"),
    path("registry/heartbeat", registry.heartbeat, name="registry-heartbeat"),
    path("workspaces/<str:workspace_id>/activity", activity.activity, name="workspace-activity"),
    path(
        "workspaces/<str:workspace_id>/activity/ack",
        activity.activity_ack,
        name="workspace-activity-ack",
    ),
    # Ours, not upstream's: rotate the workspace's bearer token.
    path(
        "workspaces/<str:workspace_id>/token/rotate",
        registry.token_rotate,
        name="workspace-token-rotate",
    ),
    path("workspaces/<str:workspace_id>/", include("pending_uploads.urls")),
    path("uploads/limits", upload_views.limits, name="uploads-limits"),
    path("metrics", internal.metrics, name="prometheus-django-metrics"),
    # nginx's token check before it reads a body (deploy/nginx); never routed publicly.
    path("internal/auth", internal.proxy_auth, name="internal-auth"),
    path("admin/", admin.site.urls),
    # Static files are WhiteNoise's (settings.MIDDLEWARE), with DEBUG on or off.
    path("", pages.home, name="home"),
]

handler400 = "molecule.views.errors.bad_request"
handler403 = "molecule.views.errors.permission_denied"
handler404 = "molecule.views.errors.not_found"
handler500 = "molecule.views.errors.server_error"
