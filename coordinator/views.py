from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordinator.keys import coordinator_signing_key
from signing.keys import key_id, public_key_hex


class CoordinatorKeyView(APIView):
    """The public key nodes use to verify dispatches."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "CoordinatorKey",
            {"public_key": serializers.CharField(), "key_id": serializers.CharField()},
        )
    )
    def get(self, request: Request) -> Response:
        verify_key = coordinator_signing_key().verify_key
        return Response({"public_key": public_key_hex(verify_key), "key_id": key_id(verify_key)})
