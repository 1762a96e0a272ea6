"""Thin API views for deployments: parse, call one service, render.

A service's refusal (a ServiceError) reaches the client through the API's exception handler
(grid/api_errors.py); views do not catch it.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordinator import services
from coordinator.choices import JobState
from coordinator.keys import coordinator_signing_key
from coordinator.models import Deployment, JobEvent, Workload
from coordinator.serializers import (
    DeploymentSerializer,
    JobEventSerializer,
    ScriptSerializer,
    SubmitSerializer,
    WorkloadSerializer,
)
from grid.api_errors import ApiError
from grid.ids import query_id
from signing.keys import key_id, public_key_hex

EVENTS_PAGE = 500


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


@extend_schema(
    parameters=[
        OpenApiParameter("status", str, enum=JobState.values, description="only this status")
    ]
)
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A user's deployments; nobody sees or touches another user's."""

    serializer_class = DeploymentSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        deployments = Deployment.objects.filter(owner=self.request.user).select_related(
            "owner", "job"
        )
        if self.action != "list" or "status" not in self.request.query_params:
            return deployments
        wanted = self.request.query_params["status"]
        if wanted not in JobState.values:
            raise ApiError(
                "invalid_status",
                f"status {wanted!r} is not a deployment status; use one of: "
                + ", ".join(JobState.values),
                allowed=JobState.values,
            )
        return deployments.filter(status=wanted)

    @extend_schema(request=SubmitSerializer, responses={201: DeploymentSerializer})
    def create(self, request: Request) -> Response:
        serializer = SubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = services.submit_deployment(
            owner=request.user, envelope=serializer.validated_data["envelope"]
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        deployment = services.cancel_deployment(deployment=self.get_object())
        return Response(DeploymentSerializer(deployment).data)

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="last seq already seen")],
        responses=JobEventSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            raise ApiError("invalid", "after must be an integer event seq") from None
        events = list(
            JobEvent.objects.filter(job__deployment=deployment, id__gt=after).order_by("id")[
                :EVENTS_PAGE
            ]
        )
        return Response(
            {
                "status": deployment.status,
                "results": JobEventSerializer(events, many=True).data,
                "next": events[-1].id if events else after,
            }
        )


class ScriptValidateView(APIView):
    """Compile a script and check its calls against the catalog, without deploying it."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=ScriptSerializer)
    def post(self, request: Request) -> Response:
        serializer = ScriptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        functions = services.check_script(serializer.validated_data["script"])
        return Response({"ok": True, "functions": functions})


@extend_schema(
    parameters=[
        OpenApiParameter("node", int, description="only this node's workloads"),
        OpenApiParameter("kind", str, description="vm, volume or herodb"),
    ]
)
class WorkloadViewSet(viewsets.ReadOnlyModelViewSet):
    """The user's VMs, volumes and databases as their nodes last reported them."""

    serializer_class = WorkloadSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        workloads = Workload.objects.filter(owner=self.request.user)
        if (node := self.request.query_params.get("node")) is not None:
            workloads = workloads.filter(node_id=query_id(node, name="node"))
        if kind := self.request.query_params.get("kind"):
            workloads = workloads.filter(kind=kind)
        return workloads
