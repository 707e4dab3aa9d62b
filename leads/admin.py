from django.contrib import admin, messages
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV, JSON, XLSX

from scoring.services import leads_rescore

from .models import Lead
from .resources import LeadResource

IMPORT_EXPORT_FORMATS = [CSV, JSON, XLSX]

admin.site.site_header = "TargetGrid admin"
admin.site.site_title = "TargetGrid admin"
admin.site.index_title = "Leads, events, rules and audit"


@admin.register(Lead)
class LeadAdmin(ImportExportModelAdmin):
    resource_classes = [LeadResource]
    formats = IMPORT_EXPORT_FORMATS
    list_display = ["email", "first_name", "last_name", "company", "current_score", "max_score", "updated_at"]
    list_filter = ["created_at", "updated_at"]
    search_fields = ["email", "first_name", "last_name", "company"]
    ordering = ["-current_score", "id"]
    readonly_fields = [
        "id",
        "current_score",
        "last_processed_event_time",
        "last_processed_event_id",
        "created_at",
        "updated_at",
    ]
    actions = ["rescore_selected"]
    show_full_result_count = False  # no COUNT(*) over 100k leads on every changelist

    @admin.action(description="Rescore selected leads with the current rules", permissions=["change"])
    def rescore_selected(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        changed = leads_rescore(lead_ids=ids, actor=request.user.get_username())
        self.message_user(
            request,
            f"Rescored {len(ids)} lead{'s' if len(ids) != 1 else ''}: {changed} score{'s' if changed != 1 else ''} changed.",
            messages.SUCCESS,
        )
