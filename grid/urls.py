"""URL map: admin for operators, the versioned JSON API, its schema and interactive docs."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from ledger import boot_views

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("ledger.urls")),
    path("api/v1/", include("coordinator.urls")),
    path("api/v1/auth/token", obtain_auth_token, name="api-token"),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("boot/<int:farm_id>/", boot_views.farm_boot_page, name="farm-boot"),
    path("boot/<int:farm_id>/<str:name>", boot_views.boot_file, name="boot-file"),
    path(
        "boot/<int:farm_id>/<str:secret>/<str:name>",
        boot_views.boot_file_by_link,
        name="boot-link-file",
    ),
]

handler404 = "grid.api_errors.json_not_found"
handler500 = "grid.api_errors.json_server_error"
