"""URL map: the users' dashboard at /, admin for operators, the versioned JSON API and its docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import ObtainTokenView
from ledger import boot_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("ledger.urls")),
    path("api/v1/", include("coordinator.urls")),
    path("api/v1/", include("hub.urls")),
    path("api/v1/auth/token", ObtainTokenView.as_view(), name="api-token"),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/v1/docs", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"
    ),
    path("boot/<int:farm_id>/", boot_views.farm_boot_page, name="farm-boot"),
    path("boot/<int:farm_id>/<str:name>", boot_views.boot_file, name="boot-file"),
    path(
        "boot/<int:farm_id>/<str:secret>/<str:name>",
        boot_views.boot_file_by_link,
        name="boot-link-file",
    ),
    path("", include("ops.urls")),
    path("", include("dashboard.urls")),
]

handler404 = "grid.api_errors.json_not_found"
handler500 = "grid.api_errors.json_server_error"
