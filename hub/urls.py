from django.urls import path
from rest_framework.routers import SimpleRouter

from hub import node_views, views

router = SimpleRouter(trailing_slash=False)
router.register("images", views.ImageViewSet, basename="image")

urlpatterns = [
    *router.urls,
    path("blobs/<str:sha256>", views.BlobView.as_view(), name="blob"),
    path("node-fetch/images/<str:name>", node_views.NodeImageView.as_view(), name="node-image"),
    path("node-fetch/blobs/<str:sha256>", node_views.NodeBlobView.as_view(), name="node-blob"),
]
