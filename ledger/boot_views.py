"""What machines and operators download: per-farm boot artefacts, boot images, agent releases.

The /boot/<farm>/<file> downloads are open to anyone (a machine booting over iPXE has no
credentials), but only the farm's owner or staff, signed in, get the variant that approves nodes;
/boot/<farm>/<secret>/<file> gives it to whoever holds the farm's boot link (who gets which:
ledger/boot_links.py). They stream files from disk with their sha256 as ETag and in
`X-Checksum-Sha256`, and answer 304 to a matching `If-None-Match`. The farm's page shows each
visitor what they may download, and the owner the link and a button to rotate it.
Uploads (boot images, releases) are staff-only API calls; reads are public.
A refusal (LedgerError) becomes the JSON error body in grid/api_errors.py, for the plain views
and the API alike.
"""

import logging
from http import HTTPStatus
from pathlib import Path

from django.conf import settings
from django.contrib import admin, messages
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotModified,
)
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from grid import json_input
from grid.api_errors import ApiError
from grid.json_input import JSONParser
from ledger import boot, boot_links, releases
from ledger.errors import LedgerError
from ledger.models import VERSION_PATTERN, AgentRelease, BootImage, Farm
from ledger.serializers import AgentReleaseSerializer, BootImageSerializer, RolloutSerializer
from signing.keys import key_id

log = logging.getLogger(__name__)

CONTENT_TYPES = {"boot.ipxe": "text/plain; charset=utf-8"}
DOWNLOAD_NAMES = {"zos.efi": "zos-farm{farm}.efi", "usb.img": "zos-farm{farm}-usb.img"}


def ledger_url() -> str:
    """The URL nodes reach the ledger at: configured only, never a request's Host header."""
    return settings.ZOS_PUBLIC_URL


def stream_file(
    request: HttpRequest | Request,
    path: Path,
    sha256: str,
    *,
    content_type: str = "application/octet-stream",
    filename: str | None = None,
) -> HttpResponse:
    """Stream `path` (never read whole) with its hash as ETag; 304 when the client has it.

    A file the database lists but the disk lost (a data directory restored without it, a
    deleted release) is a 404 naming the file, logged for the operator, not a 500.
    """
    etag = f'"{sha256}"'
    if_none_match = request.headers.get("If-None-Match", "")
    if if_none_match and (if_none_match.strip() == "*" or etag in parse_etags(if_none_match)):
        response: HttpResponse = HttpResponseNotModified()
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115  (FileResponse closes it)
        except FileNotFoundError:
            log.error("%s is listed but missing on disk", path)
            raise LedgerError(
                "file_missing",
                f"{path.name} is listed but not stored on this server; an operator must restore "
                "or republish it",
                http_status=404,
            ) from None
        response = FileResponse(
            stream,
            content_type=content_type,
            as_attachment=filename is not None,
            filename=filename or "",
        )
        response["X-Checksum-Sha256"] = sha256
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response


def _farm(farm_id: int) -> Farm:
    farm = Farm.objects.select_related("boot_image").filter(pk=farm_id).first()
    if farm is None:
        raise LedgerError("unknown_farm", f"farm {farm_id} does not exist", http_status=404)
    return farm


def _serve(
    request: HttpRequest | Request,
    farm: Farm,
    name: str,
    *,
    downloader: boot_links.Downloader | None,
) -> HttpResponse:
    """Stream one of the farm's files: the approving variant when `downloader` is given."""
    if name not in boot.ARTEFACTS:
        raise LedgerError(
            "not_found",
            f"no boot file {name!r}; there are {', '.join(boot.ARTEFACTS)}",
            http_status=404,
        )
    artefacts = boot.FarmArtefacts(
        boot.image_for(farm), farm, ledger_url(), approving=downloader is not None
    )
    artefact = artefacts.get(name)
    download = DOWNLOAD_NAMES.get(name)
    response = stream_file(
        request,
        artefact.path,
        artefact.sha256,
        content_type=CONTENT_TYPES.get(name, "application/octet-stream"),
        filename=download.format(farm=farm.pk) if download else None,
    )
    # The same URL gives another file to the owner than to a stranger: no shared cache may
    # keep the owner's, nor give a stranger's to the owner.
    patch_vary_headers(response, ("Cookie", "Authorization"))
    if downloader is not None and artefacts.approving and name in boot.STAMPED:
        response["Cache-Control"] = "private, no-cache"
        boot_links.record_approving_download(
            farm=farm,
            name=name,
            downloader=downloader,
            not_modified=response.status_code == HTTPStatus.NOT_MODIFIED,
        )
    return response


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


@extend_schema(exclude=True)
@api_view(["GET", "HEAD"])
@permission_classes([permissions.AllowAny])
def boot_file(request: Request, farm_id: int, name: str) -> HttpResponse:
    """`/boot/<farm>/<name>`: the farm's zos.efi, usb.img, boot.ipxe, vmlinuz or initrd.

    A DRF view only so that an API token signs the owner in as a session does; anyone else
    gets the files without the farm's enrollment token.
    """
    farm = _farm(farm_id)
    downloader = None
    if boot_links.manages_farm(request.user, farm):
        downloader = boot_links.Downloader(f"user:{request.user.username}", _client_ip(request))
    return _serve(request, farm, name, downloader=downloader)


@require_safe
def boot_file_by_link(request: HttpRequest, farm_id: int, secret: str, name: str) -> HttpResponse:
    """`/boot/<farm>/<secret>/<name>`: the approving files, for whoever holds the farm's link."""
    farm = _farm(farm_id)
    boot_links.check_boot_link(farm, secret)
    downloader = boot_links.Downloader("link", _client_ip(request))
    return _serve(request, farm, name, downloader=downloader)


def _redacted(cmdline: str) -> str:
    """The command line as a page may show it: the token stays in the files."""
    return " ".join(
        "zos.enroll=(set)" if word.startswith("zos.enroll=") else word for word in cmdline.split()
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def farm_boot_page(request: HttpRequest, farm_id: int) -> HttpResponse:
    """The farm's page: what this visitor may download, sizes, sha256 and how to write a stick.

    Its owner and staff see the secret boot link (approving media) and rotate it by POST;
    everyone else sees the public files, whose nodes wait for approval.
    """
    farm = _farm(farm_id)
    manager = boot_links.manages_farm(request.user, farm)
    if request.method == "POST":
        if not manager:
            return HttpResponseForbidden("only the farm's owner and staff may rotate its link")
        boot_links.rotate_boot_link(farm=farm, actor=f"user:{request.user.username}")
        messages.success(
            request,
            "New boot link made: the old link no longer works and media downloaded before "
            "no longer approve new nodes.",
        )
        return redirect("farm-boot", farm_id=farm.pk)
    base = ledger_url()
    folder = boot_links.boot_link_url(farm, base) if manager else f"{base}/boot/{farm.pk}/"
    context = {
        **admin.site.each_context(request),
        "title": f"Boot farm {farm.name}",
        "farm": farm,
        "base": base,
        "manager": manager,
        "folder": folder,
    }
    try:
        image = boot.image_for(farm)
        artefacts = boot.FarmArtefacts(image, farm, base, approving=manager)
        context.update(
            image=image,
            approving=artefacts.approving,
            cmdline=_redacted(artefacts.cmdline),
            files=[
                {"artefact": artefacts.get(name), "url": f"{folder}{name}"}
                for name in boot.ARTEFACTS
            ],
        )
    except LedgerError as exc:
        context["problem"] = exc.message
    return render(request, "ledger/farm_boot.html", context)


class IsStaffToWrite(permissions.BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_staff)


def _manifest(request: Request) -> dict:
    upload = request.FILES.get("manifest")
    text = upload.read() if upload is not None else request.data.get("manifest", "")
    try:
        manifest = json_input.loads(text)
    except json_input.MalformedJSON as exc:
        raise ApiError("invalid_manifest", f"manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ApiError("invalid_manifest", "manifest must be a JSON object")
    return manifest


class BootImageViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Boot images; staff upload one (multipart: version, manifest, files) or make one current."""

    queryset = BootImage.objects.all()
    serializer_class = BootImageSerializer
    lookup_field = "version"
    lookup_value_regex = VERSION_PATTERN
    permission_classes = [IsStaffToWrite]
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(request=None, responses=BootImageSerializer)
    def create(self, request: Request) -> Response:
        manifest = _manifest(request)
        version = str(request.data.get("version") or manifest.get("version") or "")
        files = {Path(f.name).name: f for f in request.FILES.getlist("files")}
        make_current = str(request.data.get("make_current", "true")).lower() != "false"
        image = boot.register_boot_image(
            version=version,
            manifest=manifest,
            files=files,
            uploaded_by=request.user,
            make_current=make_current,
        )
        return Response(BootImageSerializer(image).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=BootImageSerializer)
    @action(detail=True, methods=["post"])
    def current(self, request: Request, version: str) -> Response:
        image = boot.make_current_image(self.get_object(), actor=f"user:{request.user}")
        return Response(BootImageSerializer(image).data)


class AgentReleaseViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Signed agent releases; nodes read one and download its bundle; staff publish them and
    roll them out to farms."""

    queryset = AgentRelease.objects.all()
    serializer_class = AgentReleaseSerializer
    lookup_field = "version"
    lookup_value_regex = VERSION_PATTERN
    permission_classes = [IsStaffToWrite]
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(request=None, responses=AgentReleaseSerializer)
    def create(self, request: Request) -> Response:
        bundle = request.FILES.get("bundle")
        if bundle is None:
            raise ApiError("missing_files", "send the bundle as the multipart file 'bundle'")
        release = releases.publish_release(
            version=str(request.data.get("version", "")),
            bundle=bundle,
            actor=f"user:{request.user}",
        )
        return Response(AgentReleaseSerializer(release).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RolloutSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def rollout(self, request: Request, version: str) -> Response:
        """Staff: the farms' desired agent version becomes this one (the uptime reply says so)."""
        release = self.get_object()
        serializer = RolloutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        farms = releases.select_farms(serializer.validated_data["farms"])
        ids = sorted(farms.values_list("pk", flat=True))
        releases.set_desired_version(farms=farms, version=release.version)
        return Response({"version": release.version, "farms": ids})

    @extend_schema(responses={(200, "application/gzip"): bytes})
    @action(detail=True, methods=["get"])
    def bundle(self, request: Request, version: str) -> HttpResponse:
        release = self.get_object()
        return stream_file(
            request,
            release.bundle_path,
            release.sha256,
            content_type="application/gzip",
            filename=f"zos-agent-{release.version}.tar.gz",
        )


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([permissions.AllowAny])
def release_key(request: Request) -> Response:
    """The public key agent releases are signed with (nodes pin it)."""
    public_key = releases.release_public_key_hex()
    return Response(
        {
            "public_key": public_key,
            "key_id": key_id(bytes.fromhex(public_key)),
            "algorithm": "ed25519",
            "payload_type": releases.RELEASE_TYPE,
        }
    )
