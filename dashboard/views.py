"""The browser pages of users and farmers: thin views over the account and ledger services.

Every page is server-rendered; scripts are ES modules from static files (no inline script, so
the Content-Security-Policy in grid/settings.py holds). Every query is filtered by the signed-in
user, and another user's id is answered like a missing one.
"""

import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import services as accounts
from accounts.models import ApiToken
from coordinator.choices import JobState
from coordinator.models import Deployment
from coordinator.serializers import status_detail
from coordinator.states import FINAL_STATES
from dashboard.forms import SignUpForm, TokenForm
from ledger import services as ledger
from ledger.models import UserKey

RECENT_DEPLOYMENTS = 5
DEPLOYMENTS_PAGE = 25
EXAMPLES_DIR = Path(settings.BASE_DIR) / "examples"


def _examples() -> list[dict[str, str]]:
    """The example scripts shipped in examples/, hello first: the editor starts from them."""
    files = sorted(EXAMPLES_DIR.glob("*.rhai"), key=lambda f: (f.stem != "hello", f.stem))
    return [{"name": f.stem, "text": f.read_text(encoding="utf-8")} for f in files]


def home(request: HttpRequest) -> HttpResponse:
    """The dashboard for a signed-in user; a short welcome for everyone else."""
    if not request.user.is_authenticated:
        return render(request, "dashboard/welcome.html")
    context = {
        "key_count": UserKey.objects.filter(user=request.user, revoked_at=None).count(),
        "token_count": ApiToken.objects.filter(user=request.user).count(),
        "deployments": Deployment.objects.filter(owner=request.user)
        .only("name", "status", "created")
        .order_by("-created")[:RECENT_DEPLOYMENTS],
    }
    return render(request, "dashboard/home.html", context)


def sign_up(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard:home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.sign_up(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except accounts.AccountError as exc:
            form.add_error("username", exc.message)
        except ValidationError as exc:
            form.add_error("password1", exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}. Your account is ready.")
            return redirect("dashboard:home")
    return render(request, "dashboard/sign_up.html", {"form": form})


class SignInView(auth_views.LoginView):
    """Django's sign-in; django-axes counts its failures and answers a lockout page."""

    template_name = "dashboard/sign_in.html"
    redirect_authenticated_user = True


class SignOutView(auth_views.LogoutView):
    """POST only (Django 5): a link or an image on another site cannot sign anyone out."""


class PasswordView(auth_views.PasswordChangeView):
    template_name = "dashboard/password.html"
    success_url = reverse_lazy("dashboard:home")

    def form_valid(self, form) -> HttpResponse:
        messages.success(self.request, "Your password was changed.")
        return super().form_valid(form)


@never_cache
@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List and create API tokens; a new secret is in this one response and never again."""
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = accounts.create_api_token(user=request.user, name=form.cleaned_data["name"])
        except accounts.AccountError as exc:
            form.add_error("name", exc.message)
        else:
            form = TokenForm()
    context = {
        "form": form,
        "secret": secret,
        "tokens": ApiToken.objects.filter(user=request.user),
        "api_url": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, "dashboard/tokens.html", context)


@require_POST
@login_required
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    """Another user's token is 404, as a missing one is (and as every other resource is)."""
    accounts.revoke_api_token(user=request.user, token_id=token_id)
    messages.success(request, "The token was revoked; it no longer works.")
    return redirect("dashboard:tokens")


@login_required
def keys(request: HttpRequest) -> HttpResponse:
    """The user's signing keys; keys.js makes new ones in the browser and registers them."""
    return render(
        request, "dashboard/keys.html", {"keys": UserKey.objects.filter(user=request.user)}
    )


@require_POST
@login_required
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(UserKey, user=request.user, pk=key_id)
    ledger.revoke_user_key(key=key)
    messages.success(request, f"Key “{key.name}” is revoked: nothing it signs is accepted now.")
    return redirect("dashboard:keys")


@login_required
def deploy(request: HttpRequest) -> HttpResponse:
    """The script editor; deploy.js checks, signs and submits through the JSON API."""
    return render(request, "dashboard/deploy.html", {"examples": _examples()})


@login_required
def deployments(request: HttpRequest) -> HttpResponse:
    """The user's deployments, newest first, filtered by status, a page at a time."""
    wanted = request.GET.get("status", "")
    rows = (
        Deployment.objects.filter(owner=request.user)
        .only("name", "status", "created", "target_node", "target_farm")
        .order_by("-id")
    )
    unknown = ""
    if wanted in JobState.values:
        rows = rows.filter(status=wanted)
    else:
        unknown, wanted = wanted, ""
    page = Paginator(rows, DEPLOYMENTS_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "statuses": JobState.choices, "wanted": wanted, "unknown": unknown}
    return render(request, "dashboard/deployments.html", context)


@login_required
def deployment(request: HttpRequest, deployment_id: int) -> HttpResponse:
    """One deployment; deployment.js follows its events live. Another user's id is 404."""
    found = get_object_or_404(
        Deployment.objects.select_related("job"), owner=request.user, pk=deployment_id
    )
    job = getattr(found, "job", None)
    context = {
        "deployment": found,
        "job": job,
        "detail": status_detail(job),
        "final": found.status in FINAL_STATES,
        "result": json.dumps(job.result, indent=2, ensure_ascii=False)
        if job and job.result is not None
        else "",
    }
    return render(request, "dashboard/deployment.html", context)
