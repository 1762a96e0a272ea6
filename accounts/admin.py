from django.contrib import admin

from accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created", "last_used"]
    list_filter = ["created"]
    search_fields = ["name", "user__username"]
    readonly_fields = ["user", "prefix", "created", "last_used"]
