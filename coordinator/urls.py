from django.urls import path
from rest_framework.routers import SimpleRouter

from coordinator import catalog_views, draft_views, gateway_views, views

router = SimpleRouter(trailing_slash=False)
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("workloads", views.WorkloadViewSet, basename="workload")
router.register("drafts", draft_views.DraftViewSet, basename="draft")

urlpatterns = [
    *router.urls,
    path("coordinator/key", views.CoordinatorKeyView.as_view(), name="coordinator-key"),
    path("catalog", catalog_views.CatalogView.as_view(), name="catalog"),
    path("scripts/validate", views.ScriptValidateView.as_view(), name="script-validate"),
    path(
        "gateway-hosts/claim",
        gateway_views.GatewayHostClaimView.as_view(),
        name="gateway-host-claim",
    ),
    path(
        "gateway-hosts/release",
        gateway_views.GatewayHostReleaseView.as_view(),
        name="gateway-host-release",
    ),
]
