from django.apps import apps
from django.contrib import admin
from django.core.exceptions import DisallowedHost
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views import defaults

from api.main import api
from monitoring.health import healthz
from monitoring.prometheus import metrics


def api_not_found(request, rest=""):
    return JsonResponse(
        {"error": {"code": "not_found", "message": f"No API endpoint at {request.path}."}},
        status=404,
    )


def bad_request(request, exception):
    """A request refused before any view saw it (a Host header this server
    does not answer to, say): under /api/ in the API's error envelope, which
    is what its clients parse; Django's own page elsewhere."""
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        message = "The Host header names no host this server answers to."
    else:
        message = "The request could not be read."
    return JsonResponse({"error": {"code": "bad_request", "message": message}}, status=400)


handler400 = bad_request

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/rq/", include("django_rq.urls")),
    # Not in a worker's settings (config.worker_settings): a worker that
    # checks or reverses URLs finds the rest.
    *([path("admin/", admin.site.urls)] if apps.is_installed("django.contrib.admin") else []),
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("", include("dashboard.urls")),
]
