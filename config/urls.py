from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path

from api.main import api
from monitoring.health import healthz
from monitoring.prometheus import metrics


def api_not_found(request, rest=""):
    return JsonResponse(
        {"error": {"code": "not_found", "message": f"No API endpoint at {request.path}."}},
        status=404,
    )


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("", include("dashboard.urls")),
]
