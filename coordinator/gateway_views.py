"""The gateway node's signed requests: reserve a host for a user, and release it.

Thin: the serializer checks the shape, coordinator/gateways.py decides; refusals reach the node as
`{"error", "message", ...}` through the API's exception handler.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordinator import gateways
from ledger.choices import GatewayHostKind
from ledger.models import HOSTNAME_PATTERN
from ledger.node_auth import IsApprovedNode, NodeSignatureAuthentication

MAX_BACKENDS = 16


class HostRequestSerializer(serializers.Serializer):
    owner = serializers.IntegerField(min_value=1, help_text="The user the job runs for.")
    host = serializers.RegexField(HOSTNAME_PATTERN, max_length=253)


class ClaimSerializer(HostRequestSerializer):
    kind = serializers.ChoiceField(choices=GatewayHostKind.choices)
    backends = serializers.ListField(
        child=serializers.RegexField(r"^\[[0-9a-f:.]+\]:[0-9]{1,5}$"),
        min_length=1,
        max_length=MAX_BACKENDS,
    )


_RESERVATION = inline_serializer(
    "GatewayHostReservation",
    {
        "host": serializers.CharField(),
        "kind": serializers.CharField(),
        "node": serializers.IntegerField(),
    },
)


class _NodeSigned(APIView):
    authentication_classes = [NodeSignatureAuthentication]
    permission_classes = [IsApprovedNode]


class GatewayHostClaimView(_NodeSigned):
    """A gateway reserves a host for the owner of the job that asked (backends checked)."""

    @extend_schema(request=ClaimSerializer, responses={200: _RESERVATION, 201: _RESERVATION})
    def post(self, request: Request) -> Response:
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        reservation, created = gateways.claim_host(
            node=request.auth.node,
            owner_id=data["owner"],
            host=data["host"],
            kind=data["kind"],
            backends=list(data["backends"]),
        )
        body = {"host": reservation.host, "kind": reservation.kind, "node": reservation.node_id}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class GatewayHostReleaseView(_NodeSigned):
    """A gateway gives a user's host up (after deleting its route)."""

    @extend_schema(
        request=HostRequestSerializer,
        responses=inline_serializer(
            "GatewayHostReleased", {"released": serializers.BooleanField()}
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = HostRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        released = gateways.release_host(
            node=request.auth.node, owner_id=data["owner"], host=data["host"]
        )
        return Response({"released": released})
