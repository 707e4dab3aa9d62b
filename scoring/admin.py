from django.contrib import admin
from import_export.admin import ExportMixin, ImportExportModelAdmin
from import_export.formats.base_formats import CSV, JSON, XLSX

from .models import ScoreChange, ScoringRule
from .resources import ScoreChangeResource, ScoringRuleResource
from .services import rule_save

IMPORT_EXPORT_FORMATS = [CSV, JSON, XLSX]


@admin.register(ScoringRule)
class ScoringRuleAdmin(ImportExportModelAdmin):
    """Rule edits go through ``rule_save`` and apply to the next event scored (no restart)."""

    resource_classes = [ScoringRuleResource]
    formats = IMPORT_EXPORT_FORMATS
    list_display = ["event_type", "points", "enabled", "description", "updated_at"]
    list_editable = ["points", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["event_type", "description"]
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        rule_save(rule=obj)


@admin.register(ScoreChange)
class ScoreChangeAdmin(ExportMixin, admin.ModelAdmin):
    """The audit log: append-only, so read-only here (export allowed)."""

    resource_classes = [ScoreChangeResource]
    formats = IMPORT_EXPORT_FORMATS
    list_display = ["lead", "event_type", "previous_score", "new_score", "delta", "late", "timestamp", "created_at"]
    list_filter = ["event_type", "late", "created_at"]
    search_fields = ["lead__email", "event__event_id", "reason"]
    list_select_related = ["lead"]
    raw_id_fields = ["lead", "event"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
