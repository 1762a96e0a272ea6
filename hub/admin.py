"""Operators see every published image and may delete one (nodes keep cached copies).

Images and blobs are made only through the API (`zos image push`): an image is only ever what
its publisher signed, so the admin cannot add or edit one.
"""

from django.contrib import admin
from django.http import HttpRequest

from hub.models import Blob, Image, ImagePart


class ImagePartInline(admin.TabularInline):
    model = ImagePart
    extra = 0
    readonly_fields = ["role", "sha256", "size"]
    can_delete = False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "kind", "owner", "public", "size", "created"]
    list_filter = ["kind", "public"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["owner", "name", "version", "kind", "envelope", "payload", "signer", "size"]
    inlines = [ImagePartInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin):
    list_display = ["sha256", "owner", "size", "created"]
    search_fields = ["sha256", "owner__username"]
    readonly_fields = ["owner", "sha256", "size"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
