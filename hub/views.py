"""Thin API views of the hub for users: parse, call one service, render.

Blobs are uploaded with a raw streamed body (`PUT /api/v1/blobs/<sha256>`), read from the request
stream a chunk at a time and never parsed as data, so a multi-GiB disk never sits in memory.
"""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import services
from hub.serializers import ImageSerializer, PublishSerializer


class BlobView(APIView):
    """HEAD: did I upload these bytes already? PUT: upload them, checked against the name."""

    permission_classes = [permissions.IsAuthenticated]

    def head(self, request: Request, sha256: str) -> HttpResponse:
        blob = services.has_blob(owner=request.user, sha256=sha256)
        if blob is None:
            return HttpResponse(status=status.HTTP_404_NOT_FOUND)
        response = HttpResponse(status=status.HTTP_200_OK)
        response["Content-Length"] = str(blob.size)
        return response

    @extend_schema(request={"application/octet-stream": bytes})
    def put(self, request: Request, sha256: str) -> Response:
        length = request.META.get("CONTENT_LENGTH")
        blob, created = services.store_blob(
            owner=request.user,
            sha256=sha256,
            stream=request.stream or _EMPTY,
            size=int(length) if length and length.isdigit() else None,
            max_size=settings.ZOS_MAX_BLOB_BYTES,
        )
        return Response(
            {"sha256": blob.sha256, "size": blob.size},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class _Empty:
    """The stream of an empty body (DRF gives None for one)."""

    @staticmethod
    def read(_size: int = -1) -> bytes:
        return b""


_EMPTY = _Empty()


class ImageViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your images and the public ones; anyone else's private image does not exist for you."""

    serializer_class = ImageSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        images = services.visible_images(self.request.user.pk).select_related("owner", "signer")
        name = self.request.query_params.get("name")
        if name:
            images = images.filter(name=name)
        return images.prefetch_related("parts")

    @extend_schema(parameters=[OpenApiParameter("name", str, description="only this name")])
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=PublishSerializer, responses={201: ImageSerializer})
    def create(self, request: Request) -> Response:
        serializer = PublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        image = services.publish_image(owner=request.user, **serializer.validated_data)
        return Response(ImageSerializer(image).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance) -> None:
        services.delete_image(owner=self.request.user, image=instance)
