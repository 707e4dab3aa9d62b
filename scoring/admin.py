from django.contrib import admin

from .models import ScoreChange, ScoringRule


@admin.register(ScoringRule)
class ScoringRuleAdmin(admin.ModelAdmin):
    list_display = ["event_type", "points", "enabled", "description", "updated_at"]
    list_editable = ["points", "enabled"]
    search_fields = ["event_type", "description"]


@admin.register(ScoreChange)
class ScoreChangeAdmin(admin.ModelAdmin):
    list_display = ["lead", "event_type", "previous_score", "new_score", "delta", "late", "timestamp", "created_at"]
    list_filter = ["event_type", "late"]
    search_fields = ["lead__email", "event__event_id"]
    list_select_related = ["lead"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
