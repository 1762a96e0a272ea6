import django_filters

from ledger.choices import NodeStatus
from ledger.models import Node


class NodeFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=NodeStatus.choices)

    class Meta:
        model = Node
        fields = ["farm", "status"]
