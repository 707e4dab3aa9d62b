from django import forms
from django.contrib import admin, messages
from import_export.admin import ImportExportModelAdmin
from import_export.formats.base_formats import CSV, JSON, XLSX

from scoring.services import lead_max_score_set, leads_rescore

from .models import Lead
from .resources import LeadResource
from .services import EDITABLE_FIELDS, LeadAlreadyExists, lead_create, lead_profile_set

IMPORT_EXPORT_FORMATS = [CSV, JSON, XLSX]

admin.site.site_header = "TargetGrid admin"
admin.site.site_title = "TargetGrid admin"
admin.site.index_title = "Leads, events, rules and audit"


class LeadAdminForm(forms.ModelForm):
    class Meta:
        model = Lead
        fields = [*EDITABLE_FIELDS, "max_score"]

    def clean_email(self):
        # Stored lower-cased: normalise before the form's uniqueness check, not after it.
        return (self.cleaned_data.get("email") or "").strip().lower()


@admin.register(Lead)
class LeadAdmin(ImportExportModelAdmin):
    """Writes go through services: a new lead through ``lead_create``; an edit writes only the
    profile fields the form changed (``lead_profile_set``, one UPDATE of those columns) and a new
    cap through ``lead_max_score_set`` (locks the lead, re-folds its score). The form's copy of the
    row is never saved whole, so a score committed by a drain meanwhile is never overwritten."""

    form = LeadAdminForm
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

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            try:
                lead = lead_create(**{name: data[name] for name in (*EDITABLE_FIELDS, "max_score") if name in data})
            except LeadAlreadyExists as exc:  # created concurrently, after the form's uniqueness check
                lead = exc.lead
                self.message_user(request, f"A lead with e-mail {lead.email} already exists; nothing was changed.",
                                  messages.WARNING)
            for field in Lead._meta.concrete_fields:
                setattr(obj, field.attname, getattr(lead, field.attname))
            obj._state.adding, obj._state.db = False, lead._state.db
            return
        changed = [name for name in form.changed_data if name in EDITABLE_FIELDS]
        if changed:
            try:
                lead_profile_set(lead_id=obj.pk, fields={name: data[name] for name in changed})
            except LeadAlreadyExists as exc:  # taken concurrently, after the form's uniqueness check
                self.message_user(request, f"{exc}; the profile was not changed.", messages.ERROR)
        if "max_score" in form.changed_data:
            lead_max_score_set(lead_id=obj.pk, max_score=data["max_score"], actor=request.user.get_username())

    @admin.action(description="Rescore selected leads with the current rules", permissions=["change"])
    def rescore_selected(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        changed = leads_rescore(lead_ids=ids, actor=request.user.get_username())
        self.message_user(
            request,
            f"Rescored {len(ids)} lead{'s' if len(ids) != 1 else ''}: {changed} score{'s' if changed != 1 else ''} changed.",
            messages.SUCCESS,
        )
