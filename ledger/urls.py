from django.urls import path
from rest_framework.routers import SimpleRouter

from grid import ids  # noqa: F401  (registers the <id:…> converter)
from ledger import boot_views, views

router = SimpleRouter(trailing_slash=False)
router.register("farms", views.FarmViewSet)
router.register("nodes", views.NodeViewSet)
router.register("keys", views.UserKeyViewSet, basename="userkey")

urlpatterns = [
    *router.urls,
    path("users/<id:user_id>/keys", views.UserPublicKeysView.as_view(), name="user-public-keys"),
]

# Boot images and agent releases (ledger/boot_views.py); the key route comes before the
# release detail route, whose version pattern would match "key" too.
downloads = SimpleRouter(trailing_slash=False)
downloads.register("boot-images", boot_views.BootImageViewSet)
downloads.register("releases", boot_views.AgentReleaseViewSet)
urlpatterns += [
    path("releases/key", boot_views.release_key, name="release-key"),
    *downloads.urls,
]
