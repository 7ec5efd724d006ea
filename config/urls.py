from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path

from config.api import api
from deliveries.api import deliveries_router, events_router
from deliveries.health import healthz
from deliveries.prometheus import metrics
from webhooks.api import router as webhooks_router

api.add_router("/v1/webhooks", webhooks_router)
api.add_router("/v1/events", events_router)
api.add_router("/v1/deliveries", deliveries_router)
api.add_router("/v1", "deliveries.alerts_api.router")


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
