"""What nodes fetch from the hub, with signed node requests (ARCHITECTURE §4).

A node names the owner it fetches for (`?owner=`); the hub answers only what that owner may see
and only to a node that runs that owner's jobs (hub/services.py). The node verifies everything
itself: the publisher's signature on the manifest and each blob's sha256 and size.
"""

from django.http import FileResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import blobstore, services
from hub.serializers import NodeImageSerializer
from ledger.node_auth import IsApprovedNode, NodeSignatureAuthentication


class NodeImageView(APIView):
    authentication_classes = [NodeSignatureAuthentication]
    permission_classes = [IsApprovedNode]

    def get(self, request: Request, name: str) -> Response:
        image = services.image_for_node(
            node=request.auth.node, owner=request.query_params.get("owner"), name=name
        )
        return Response(NodeImageSerializer(image).data)


class NodeBlobView(APIView):
    authentication_classes = [NodeSignatureAuthentication]
    permission_classes = [IsApprovedNode]

    def get(self, request: Request, sha256: str) -> FileResponse:
        part = services.blob_for_node(
            node=request.auth.node, owner=request.query_params.get("owner"), sha256=sha256
        )
        return FileResponse(
            open(blobstore.blob_path(part.sha256), "rb"),
            content_type="application/octet-stream",
        )
