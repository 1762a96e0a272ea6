"""The farm pages' forms; the limits match the API's serializers (ledger/serializers.py)."""

from django import forms

from ledger.models import AgentRelease


class FarmForm(forms.Form):
    name = forms.CharField(
        label="Farm name",
        max_length=64,
        help_text="Unique across the grid; users see it when they pick where to deploy.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class EnrollmentTokenForm(forms.Form):
    label = forms.CharField(
        max_length=100,
        required=False,
        help_text="What it is for, e.g. “rack 2”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    uses = forms.IntegerField(label="Nodes it may approve", min_value=1, max_value=1000, initial=1)
    days = forms.IntegerField(label="Valid for (days)", min_value=1, max_value=365, initial=7)


class ReleaseForm(forms.Form):
    agent_version = forms.ChoiceField(
        label="Agent release",
        required=False,
        help_text="Nodes update to it at their next uptime report; none: each keeps its own.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        versions = AgentRelease.objects.values_list("version", flat=True)
        self.fields["agent_version"].choices = [
            ("", "none (nodes keep the version they run)"),
            *((v, v) for v in versions),
        ]
