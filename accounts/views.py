"""`POST /api/v1/auth/token` (what `zos login` calls): username and password for a named token.

Credentials go through `authenticate()` with the request, so django-axes counts failures and
locks out a username+address after too many, exactly as for the browser's sign-in form.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from grid.api_errors import ApiError


class ObtainTokenSerializer(AuthTokenSerializer):
    name = serializers.CharField(required=False, max_length=64, allow_blank=True)


class ObtainTokenView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=ObtainTokenSerializer,
        responses={200: inline_serializer("ApiTokenSecret", {"token": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        serializer = ObtainTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):
                raise ApiError(
                    "locked_out",
                    "too many failed sign-ins for this account from this address; try again later",
                    http_status=status.HTTP_429_TOO_MANY_REQUESTS,
                )
            serializer.is_valid(raise_exception=True)
        _, secret = services.create_api_token(
            user=serializer.validated_data["user"],
            name=serializer.validated_data.get("name") or services.LOGIN_TOKEN_NAME,
        )
        return Response({"token": secret})
