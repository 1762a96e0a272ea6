from django.urls import path
from rest_framework.routers import SimpleRouter

from ledger import views

router = SimpleRouter(trailing_slash=False)
router.register("farms", views.FarmViewSet)
router.register("nodes", views.NodeViewSet)
router.register("keys", views.UserKeyViewSet, basename="userkey")

urlpatterns = [
    *router.urls,
    path("users/<int:user_id>/keys", views.UserPublicKeysView.as_view(), name="user-public-keys"),
]
