"""Thin API views: parse, call one service, render.

A service's refusal (a ServiceError) reaches the client through the API's exception handler
(grid/api_errors.py); views do not catch it.
"""

import time

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grid.api_errors import ApiError
from ledger import boot_links, services
from ledger.filters import NodeFilter
from ledger.models import Farm, Node, UserKey
from ledger.node_auth import (
    IsApprovedNode,
    IsRegisteredNode,
    IsSignedByAnyKey,
    NodeSignatureAuthentication,
)
from ledger.serializers import (
    BootLinkSerializer,
    FarmSerializer,
    NodeSerializer,
    RegistrationSerializer,
    UptimeSerializer,
    UserKeySerializer,
)


def _operator(request: Request) -> str:
    return f"user:{request.user.username}"


class FarmViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Farm.objects.select_related("owner")
    serializer_class = FarmSerializer

    @extend_schema(request=None, responses=BootLinkSerializer)
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="boot-link",
        permission_classes=[permissions.IsAuthenticated],
    )
    def boot_link(self, request: Request, pk: str) -> Response:
        """The farm's secret boot link (owner or staff); POST rotates it."""
        farm = self.get_object()
        if not boot_links.manages_farm(request.user, farm):
            # As if it did not exist: the link's existence is none of a stranger's business.
            raise services.LedgerError(
                "unknown_farm", f"farm {farm.pk} does not exist", http_status=404
            )
        if request.method == "POST":
            farm = boot_links.rotate_boot_link(farm=farm, actor=_operator(request))
        link = boot_links.describe_link(farm, settings.ZOS_PUBLIC_URL)
        return Response(BootLinkSerializer(link).data)


class NodeViewSet(viewsets.ReadOnlyModelViewSet):
    """Public reads; register and uptime signed by the node; approve and decommission by staff."""

    queryset = Node.objects.all()
    serializer_class = NodeSerializer
    filterset_class = NodeFilter
    lookup_value_regex = r"[0-9]+|[0-9a-fA-F]{64}"
    authentication_classes = [NodeSignatureAuthentication, *APIView.authentication_classes]
    node_signed_actions = {"create": IsSignedByAnyKey, "uptime": IsRegisteredNode}

    def get_permissions(self) -> list:
        if self.action in self.node_signed_actions:
            return [self.node_signed_actions[self.action]()]
        if self.action in {"approve", "decommission"}:
            return [permissions.IsAdminUser()]
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
        body = {**NodeSerializer(node).data, "interval": settings.ZOS_UPTIME_INTERVAL}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=UptimeSerializer)
    @action(detail=True, methods=["post"])
    def uptime(self, request: Request, pk: str) -> Response:
        node = self.get_object()
        if node.pk != request.auth.node.pk:
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
        return Response(
            {
                "id": node.pk,
                "status": node.status,
                "interval": settings.ZOS_UPTIME_INTERVAL,
                "desired": {"agent_version": node.farm.desired_agent_version or None},
                "server_time": int(time.time()),
            }
        )

    @extend_schema(request=None, responses=NodeSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        node = services.approve_node(node=self.get_object(), actor=_operator(request))
        return Response(NodeSerializer(node).data)

    @extend_schema(request=None, responses=NodeSerializer)
    @action(detail=True, methods=["post"])
    def decommission(self, request: Request, pk: str) -> Response:
        node = services.decommission_node(node=self.get_object(), actor=_operator(request))
        return Response(NodeSerializer(node).data)


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
