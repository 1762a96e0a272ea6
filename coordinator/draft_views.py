"""The drafts API: a user's unsent scripts, owner-scoped like deployments (another user's id is
404). Validation is the serializer's, the saving rules coordinator/drafts.py's."""

from rest_framework import permissions, serializers, viewsets

from coordinator.drafts import save_draft
from coordinator.models import Draft
from coordinator.serializers import DraftSerializer


class DraftSummarySerializer(serializers.ModelSerializer):
    """A list row: no script, so listing many drafts stays small."""

    class Meta:
        model = Draft
        fields = ["id", "name", "updated"]


class DraftViewSet(viewsets.ModelViewSet):
    """List, create, read, change and delete the signed-in user's drafts."""

    queryset = Draft.objects.none()  # the schema's model; requests get get_queryset's
    permission_classes = [permissions.IsAuthenticated]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        drafts = Draft.objects.filter(owner=self.request.user)
        if self.action == "list":
            return drafts.only("id", "name", "updated")
        return drafts

    def get_serializer_class(self):
        return DraftSummarySerializer if self.action == "list" else DraftSerializer

    def perform_create(self, serializer: DraftSerializer) -> None:
        serializer.instance = save_draft(owner=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: DraftSerializer) -> None:
        data = {
            "name": serializer.instance.name,
            "script": serializer.instance.script,
            **serializer.validated_data,
        }
        serializer.instance = save_draft(owner=self.request.user, draft=serializer.instance, **data)
