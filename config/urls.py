from django.contrib import admin
from django.urls import include, path

from config.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("admin/rq/", include("django_rq.urls")),
    path("api/", api.urls),
]
