"""The dashboard's own forms; sign-in and password change are Django's."""

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator


class SignUpForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(
        label="Password",
        strip=False,
        help_text="At least 8 characters, not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "the two passwords differ")
        return data


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=64,
        help_text="Where you will use it, e.g. “laptop” or “ci”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
