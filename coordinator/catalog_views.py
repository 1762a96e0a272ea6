"""`GET /api/v1/catalog`: every function a deployment script may call, as contracts/catalog.py
defines it (the CLI's `zos catalog` and the dashboard read it from here).

Public: the catalog is in the docs and in every node's agent, so it reveals nothing, and a
script author can read it before having an account. It changes only with a release, so it is
served with an ETag (a hash of the body) and may be cached for a while; a client holding the
current ETag gets 304 Not Modified.
"""

import hashlib
import json

from django.utils.cache import patch_cache_control
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from contracts.catalog import as_json

CACHE_SECONDS = 300
_BODY = as_json()
_ETAG = '"' + hashlib.sha256(json.dumps(_BODY, sort_keys=True).encode()).hexdigest()[:32] + '"'


class CatalogFieldSerializer(serializers.Serializer):
    """A field of a map argument (the schema of `params[].fields[]`)."""

    name = serializers.CharField()
    type = serializers.CharField(
        help_text="string, int, number, bool, map, array<string>, array<map>, any"
    )
    required = serializers.BooleanField()
    default = serializers.JSONField(
        allow_null=True, help_text="used when the field is left out; null: none fixed (see doc)"
    )
    minimum = serializers.IntegerField(allow_null=True)
    maximum = serializers.IntegerField(allow_null=True)
    max_items = serializers.IntegerField(allow_null=True, help_text="arrays and maps")
    choices = serializers.ListField(child=serializers.CharField())
    pattern = serializers.CharField(allow_null=True, help_text="a regular expression")
    doc = serializers.CharField()
    fields = serializers.ListField(
        child=serializers.DictField(), help_text="always empty: map fields do not nest"
    )


class CatalogParamSerializer(CatalogFieldSerializer):
    """A positional parameter; a map parameter lists its fields."""

    fields = CatalogFieldSerializer(many=True)


class CatalogFunctionSerializer(serializers.Serializer):
    name = serializers.CharField()
    signature = serializers.CharField(help_text="e.g. vm_create(spec)")
    doc = serializers.CharField()
    params = CatalogParamSerializer(many=True)
    returns = serializers.CharField(help_text="the result's shape in Rhai notation")
    example = serializers.CharField(help_text="a Rhai snippet that passes the script check")


class CatalogSerializer(serializers.Serializer):
    functions = CatalogFunctionSerializer(many=True)


class CatalogView(APIView):
    """The function catalog, as the coordinator checks scripts against it."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []  # public: a stale token must not turn this into a 401

    @extend_schema(
        summary="The functions a deployment script may call",
        responses={200: CatalogSerializer, 304: OpenApiResponse(description="not modified")},
    )
    def get(self, request: Request) -> Response:
        if request.headers.get("If-None-Match") == _ETAG:
            response = Response(status=304)
        else:
            response = Response(_BODY)
        response["ETag"] = _ETAG
        patch_cache_control(response, public=True, max_age=CACHE_SECONDS)
        return response
