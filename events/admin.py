from django.contrib import admin

from .models import ApiKey, Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "event_type", "lead", "timestamp", "received_at", "status", "points", "late", "source"]
    list_filter = ["status", "event_type", "source", "late"]
    search_fields = ["event_id", "lead__email"]
    raw_id_fields = ["lead"]
    date_hierarchy = "timestamp"
    list_select_related = ["lead"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "is_active", "created_at", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]
