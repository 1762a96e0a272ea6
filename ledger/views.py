"""Thin API views: parse, call one service, render.

A service's refusal (a ServiceError) reaches the client through the API's exception handler
(grid/api_errors.py); views do not catch it.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grid.api_errors import ApiError
from ledger import boot_links, farms, services
from ledger.filters import FarmFilter, NodeFilter
from ledger.ingest import registration_reply, uptime_reply
from ledger.models import Farm, Node, UserKey
from ledger.node_auth import (
    IsApprovedNode,
    IsRegisteredNode,
    IsSignedByAnyKey,
    NodeSignatureAuthentication,
)
from ledger.serializers import (
    BootLinkSerializer,
    EnrollmentTokenSerializer,
    FarmCreateSerializer,
    FarmNodeSerializer,
    FarmSerializer,
    NodeSerializer,
    RegistrationSerializer,
    ReleaseChoiceSerializer,
    TokenCreateSerializer,
    UptimeSerializer,
    UserKeySerializer,
)


def _operator(request: Request) -> str:
    return f"user:{request.user.username}"


class FarmViewSet(viewsets.ReadOnlyModelViewSet):
    """Public reads of farms; a signed-in user creates farms and manages their own (a farm of
    someone else's is 404 to every managing action; ledger/farms.py)."""

    queryset = Farm.objects.select_related("owner")
    serializer_class = FarmSerializer
    filterset_class = FarmFilter

    def _own_farm(self, request: Request, pk: str) -> Farm:
        return farms.get_farm(request.user, pk)

    @extend_schema(request=FarmCreateSerializer, responses={201: FarmSerializer})
    def create(self, request: Request) -> Response:
        """A new farm; the signed-in user owns it."""
        serializer = FarmCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        farm = farms.create_farm(owner=request.user, name=serializer.validated_data["name"])
        return Response(FarmSerializer(farm).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=BootLinkSerializer)
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="boot-link",
        permission_classes=[permissions.IsAuthenticated],
    )
    def boot_link(self, request: Request, pk: str) -> Response:
        """The farm's secret boot link (owner or staff); POST rotates it."""
        farm = self._own_farm(request, pk)
        if request.method == "POST":
            farm = boot_links.rotate_boot_link(farm=farm, actor=_operator(request))
        link = boot_links.describe_link(farm, settings.ZOS_PUBLIC_URL)
        return Response(BootLinkSerializer(link).data)

    @extend_schema(methods=["GET"], request=None, responses=EnrollmentTokenSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        request=TokenCreateSerializer,
        responses={
            201: inline_serializer(
                "NewEnrollmentToken",
                {"token": EnrollmentTokenSerializer(), "secret": serializers.CharField()},
            )
        },
    )
    @action(detail=True, methods=["get", "post"], permission_classes=[permissions.IsAuthenticated])
    def tokens(self, request: Request, pk: str) -> Response:
        """The farm's enrollment tokens; POST makes one and answers its secret, this once."""
        farm = self._own_farm(request, pk)
        if request.method == "GET":
            rows = farms.enrollment_tokens(farm)
            return Response(EnrollmentTokenSerializer(rows, many=True).data)
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, secret = services.create_enrollment_token(
            farm=farm,
            uses=data["uses"],
            ttl=timedelta(days=data["days"]),
            label=data["label"],
            created_by=request.user,
        )
        body = {"token": EnrollmentTokenSerializer(token).data, "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=EnrollmentTokenSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path=r"tokens/(?P<token_id>[0-9]+)/revoke",
        permission_classes=[permissions.IsAuthenticated],
    )
    def revoke_token(self, request: Request, pk: str, token_id: str) -> Response:
        """The token approves no more nodes; those it approved stay."""
        token = farms.revoke_enrollment_token(
            user=request.user, farm=self._own_farm(request, pk), token_id=token_id
        )
        return Response(EnrollmentTokenSerializer(token).data)

    @extend_schema(request=None, responses=FarmNodeSerializer(many=True))
    @action(detail=True, methods=["get"], permission_classes=[permissions.IsAuthenticated])
    def nodes(self, request: Request, pk: str) -> Response:
        """The farm's nodes with capacity used and free, health, last seen and drain state."""
        farm = self._own_farm(request, pk)
        return Response(FarmNodeSerializer(farm.nodes.all(), many=True).data)

    @extend_schema(request=ReleaseChoiceSerializer, responses=FarmSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def release(self, request: Request, pk: str) -> Response:
        """The agent release the farm's nodes should run (their uptime replies carry it)."""
        farm = self._own_farm(request, pk)
        serializer = ReleaseChoiceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        farm = farms.set_release(
            user=request.user, farm=farm, version=serializer.validated_data["agent_version"]
        )
        return Response(FarmSerializer(farm).data)


class NodeViewSet(viewsets.ReadOnlyModelViewSet):
    """Public reads; register and uptime signed by the node; approve, decommission, drain and
    undrain by the farm's owner or staff (another farmer's node is 404)."""

    queryset = Node.objects.all()
    serializer_class = NodeSerializer
    filterset_class = NodeFilter
    lookup_value_regex = r"[0-9]+|[0-9a-fA-F]{64}"
    authentication_classes = [NodeSignatureAuthentication, *APIView.authentication_classes]
    node_signed_actions = {"create": IsSignedByAnyKey, "uptime": IsRegisteredNode}
    farmer_actions = {
        "approve": farms.approve,
        "decommission": farms.decommission,
        "drain": farms.drain,
        "undrain": farms.undrain,
    }

    def get_permissions(self) -> list:
        if self.action in self.node_signed_actions:
            return [self.node_signed_actions[self.action]()]
        if self.action in self.farmer_actions:
            return [permissions.IsAuthenticated()]
        return super().get_permissions()

    def get_object(self) -> Node:
        lookup = self.kwargs["pk"]
        field = "pk" if lookup.isdigit() else "public_key"
        return get_object_or_404(Node, **{field: lookup.lower()})

    @extend_schema(request=RegistrationSerializer, responses=NodeSerializer)
    def create(self, request: Request) -> Response:
        serializer = RegistrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        node, created = services.register_node(
            public_key=request.auth.public_key,
            farm_id=serializer.validated_data["farm"],
            enroll_token=serializer.validated_data.get("enroll_token") or None,
            report=serializer.to_report(),
        )
        body = registration_reply(node)  # the ingest's too (ledger/ingest.py)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=UptimeSerializer)
    @action(detail=True, methods=["post"])
    def uptime(self, request: Request, pk: str) -> Response:
        node = request.auth.node  # loaded by the signature check: no second lookup
        if pk != str(node.pk) and pk.lower() != node.public_key:
            self.get_object()  # 404 for a node that does not exist, 403 below for another's
            raise ApiError(
                "node_mismatch",
                "a node may only report for itself; the signing key belongs to another node",
                http_status=403,
                server_time=int(time.time()),
            )
        serializer = UptimeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        node = services.record_uptime(
            node=node,
            uptime=data["uptime"],
            used=dict(data.get("used") or {}),
            health=list(data["health"]),
        )
        return Response(uptime_reply(node, node.status))

    def _farmer_action(self, request: Request, pk: str) -> Response:
        node = farms.get_node(request.user, pk)
        node = self.farmer_actions[self.action](user=request.user, node=node)
        return Response(FarmNodeSerializer(node).data)

    @extend_schema(request=None, responses=FarmNodeSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        """Let a pending node into the grid."""
        return self._farmer_action(request, pk)

    @extend_schema(request=None, responses=FarmNodeSerializer)
    @action(detail=True, methods=["post"])
    def decommission(self, request: Request, pk: str) -> Response:
        """Retire the node for good: its key is refused from now on."""
        return self._farmer_action(request, pk)

    @extend_schema(request=None, responses=FarmNodeSerializer)
    @action(detail=True, methods=["post"])
    def drain(self, request: Request, pk: str) -> Response:
        """No new deployments; its waiting farm jobs move to other nodes; workloads stay."""
        return self._farmer_action(request, pk)

    @extend_schema(request=None, responses=FarmNodeSerializer)
    @action(detail=True, methods=["post"])
    def undrain(self, request: Request, pk: str) -> Response:
        """The node takes new deployments again."""
        return self._farmer_action(request, pk)


class UserKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """The logged-in user's signing keys."""

    serializer_class = UserKeySerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        return UserKey.objects.filter(user=self.request.user)

    def perform_create(self, serializer: UserKeySerializer) -> None:
        serializer.instance = services.register_user_key(
            user=self.request.user,
            name=serializer.validated_data["name"],
            public_key=serializer.validated_data["public_key"],
            proof=serializer.validated_data["proof"],
        )

    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "KeyChallenge",
                {
                    "user": serializers.IntegerField(),
                    "challenge": serializers.CharField(),
                    "expires_at": serializers.IntegerField(),
                    "payload_type": serializers.CharField(),
                },
            )
        },
    )
    @action(detail=False, methods=["post"])
    def challenge(self, request: Request) -> Response:
        """A single-use challenge, valid 5 minutes, for the proof a new key must carry."""
        return Response(
            services.issue_key_challenge(user=request.user), status=status.HTTP_201_CREATED
        )

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        key = services.revoke_user_key(key=self.get_object())
        return Response(UserKeySerializer(key).data)


class IsApprovedNodeOrStaff(permissions.BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        if request.user and request.user.is_staff:
            return True
        return IsApprovedNode().has_permission(request, view)


class UserPublicKeysView(APIView):
    """A user's keys, revoked ones included, so nodes can verify deployment signatures."""

    authentication_classes = [
        NodeSignatureAuthentication,
        *APIView.authentication_classes,
    ]
    permission_classes = [IsApprovedNodeOrStaff]

    @extend_schema(responses=UserKeySerializer(many=True))
    def get(self, request: Request, user_id: int) -> Response:
        keys = UserKey.objects.filter(user_id=user_id)
        return Response({"user": user_id, "keys": UserKeySerializer(keys, many=True).data})
