import django_filters

from ledger.choices import NodeStatus
from ledger.models import Farm, Node


class NodeFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=NodeStatus.choices)
    gateway = django_filters.BooleanFilter(
        method="filter_gateway", help_text="true: only gateway nodes; false: only the others."
    )

    class Meta:
        model = Node
        fields = ["farm", "status", "gateway"]

    def filter_gateway(self, queryset, name: str, value: bool):
        return queryset.exclude(gateway_domain="") if value else queryset.filter(gateway_domain="")


class FarmFilter(django_filters.FilterSet):
    mine = django_filters.BooleanFilter(
        method="filter_mine", help_text="true: only the farms the signed-in user owns."
    )

    class Meta:
        model = Farm
        fields = ["mine"]

    def filter_mine(self, queryset, name: str, value: bool):
        if not value:
            return queryset
        user = self.request.user if self.request else None
        if user is None or not user.is_authenticated:
            return queryset.none()
        return queryset.filter(owner=user)
