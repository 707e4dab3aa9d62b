from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from scoring.models import validate_event_type
from scoring.services import events_requeue, events_retry

from .models import (ApiKey, Event, ImportJob, SegmentEventMapping, SegmentIdentity, SegmentSource,
                     WebhookSource)
from .services import api_key_create, webhook_source_rotate_secret
from .webhooks import secret_key_bytes


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-only: events enter through ``event_ingest`` (API, imports) and change only in scoring
    services. The admin lists and shows them and runs actions that call services; no form ever
    saves one (a form's copy of a pending event, saved after a drain scored it, re-pended it)."""

    list_display = ["event_id", "event_type", "lead", "timestamp", "received_at", "status", "points", "late", "source"]
    list_filter = ["status", "event_type", "source", "late", "received_at"]
    search_fields = ["event_id", "lead__email"]
    raw_id_fields = ["lead"]
    date_hierarchy = "timestamp"
    list_select_related = ["lead"]
    show_full_result_count = False
    readonly_fields = [
        "id",
        "event_id",
        "lead",
        "received_at",
        "processed",
        "processed_at",
        "status",
        "points",
        "score_after",
        "late",
        "source",
        "error",
    ]
    actions = ["requeue_selected", "retry_failed"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # No change form saves, for anyone (the detail view is the read-only one). Without an
        # object this is the permission the actions check (``permissions=["change"]``).
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # an event and its audit rows are history

    @admin.action(description="Re-enqueue selected pending events for scoring", permissions=["change"])
    def requeue_selected(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        sent = events_requeue(event_ids=ids)
        skipped = len(ids) - sent
        text = f"Re-enqueued {sent} pending event{'s' if sent != 1 else ''}."
        if skipped:
            text += f" {skipped} already scored (or skipped/failed) were left alone."
        self.message_user(request, text, messages.SUCCESS if sent else messages.WARNING)

    def has_retry_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Retry selected failed events", permissions=["retry"])
    def retry_failed(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        retried = events_retry(event_ids=ids)
        text = f"Sent {retried} failed event{'s' if retried != 1 else ''} back to scoring."
        if len(ids) > retried:
            text += f" {len(ids) - retried} not failed were left alone."
        self.message_user(request, text, messages.SUCCESS if retried else messages.WARNING)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "key_prefix"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new key is made by the service (only its hash is stored); show the key once.
        created, raw_key = api_key_create(name=obj.name)
        if not obj.is_active:
            ApiKey.objects.filter(pk=created.pk).update(is_active=False)
        obj.pk = created.pk
        obj.refresh_from_db()
        self.message_user(
            request, f"API key for {obj.name!r}: {raw_key} — copy it now, it is not shown again.", messages.WARNING
        )


class WebhookSourceForm(forms.ModelForm):
    class Meta:
        model = WebhookSource
        fields = ["name", "mode", "enabled", "secret", "previous_secret", "secret_header", "allowed_event_types",
                  "source_tag"]

    def clean_allowed_event_types(self):
        value = self.cleaned_data.get("allowed_event_types") or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise forms.ValidationError('A JSON list of event types, e.g. ["FORM_SUBMIT", "PAGE_VIEW"].')
        value = [item.strip().upper() for item in value]
        for item in value:
            validate_event_type(item)
        return value

    def clean(self):
        data = super().clean()
        if data.get("mode") == WebhookSource.Mode.SIGNED:
            for name in ("secret", "previous_secret"):
                if data.get(name):
                    try:
                        secret_key_bytes(data[name])
                    except ValueError as exc:
                        self.add_error(name, f"{exc} (e.g. generated: leave the default).")
        elif len(data.get("secret") or "") < 16:
            self.add_error("secret", "A shared secret needs at least 16 characters.")
        return data


@admin.register(WebhookSource)
class WebhookSourceAdmin(admin.ModelAdmin):
    form = WebhookSourceForm
    list_display = ["name", "mode_label", "enabled", "secret_masked", "rotating", "source_tag", "allowed",
                    "last_used_at"]
    list_filter = ["mode", "enabled"]
    search_fields = ["name"]
    readonly_fields = ["endpoint", "created_at", "last_used_at"]
    actions = ["rotate_secret", "disable", "enable"]

    @admin.display(description="authentication", ordering="mode")
    def mode_label(self, source):
        if source.mode == WebhookSource.Mode.SIGNED:
            return "signed (Standard Webhooks)"
        return f"shared secret in {source.secret_header}"

    @admin.display(description="secret")
    def secret_masked(self, source):
        return source.masked_secret

    @admin.display(description="rotating", boolean=True)
    def rotating(self, source):
        return bool(source.previous_secret)

    @admin.display(description="event types")
    def allowed(self, source):
        return ", ".join(source.allowed_event_types) or "all"

    @admin.display(description="endpoint")
    def endpoint(self, source):
        return format_html("<code>POST /webhooks/events?source={}</code>", source.name) if source.pk else "-"

    @admin.action(description="Rotate the secret (the old one keeps working until cleared)")
    def rotate_secret(self, request, queryset):
        for source in queryset:
            webhook_source_rotate_secret(source=source)
        self.message_user(request, f"Rotated {queryset.count()} secret(s); give senders the new one, then clear "
                                   "'previous secret'.", messages.SUCCESS)

    @admin.action(description="Disable (deliveries get 403)")
    def disable(self, request, queryset):
        queryset.update(enabled=False)

    @admin.action(description="Enable")
    def enable(self, request, queryset):
        queryset.update(enabled=True)


@admin.register(SegmentSource)
class SegmentSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "write_key_prefix", "enabled", "source_tag", "created_at", "last_used_at"]
    list_filter = ["enabled"]
    fields = ["name", "enabled", "source_tag", "write_key_prefix", "created_at", "last_used_at"]
    readonly_fields = ["write_key_prefix", "created_at", "last_used_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        from .segment import segment_write_key_assign

        raw_key = segment_write_key_assign(obj)
        super().save_model(request, obj, form, change)
        self.message_user(request, f"Write key for {obj.name!r} (shown once, stored hashed): {raw_key}",
                          messages.WARNING)


class SegmentEventMappingForm(forms.ModelForm):
    class Meta:
        model = SegmentEventMapping
        fields = ["event_name", "event_type"]

    def clean_event_type(self):
        from scoring.selectors import known_event_types

        value = (self.cleaned_data.get("event_type") or "").strip().upper()
        validate_event_type(value)
        if value not in known_event_types():
            raise forms.ValidationError(f"No scoring rule for {value}; add the rule first.")
        return value


@admin.register(SegmentEventMapping)
class SegmentEventMappingAdmin(admin.ModelAdmin):
    form = SegmentEventMappingForm
    list_display = ["event_name", "event_type", "created_at"]
    list_editable = ["event_type"]
    search_fields = ["event_name", "event_type"]


@admin.register(SegmentIdentity)
class SegmentIdentityAdmin(admin.ModelAdmin):
    """Read-only: an identity moves to another lead only through the Segment merge
    (events.segment.leads_merge_placeholder), which moves the lead's events and re-scores both
    leads under their locks. Re-pointing it here would leave the events (and score) behind."""

    list_display = ["kind", "value", "lead", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["value", "lead__email"]
    raw_id_fields = ["lead"]
    list_select_related = ["lead"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "format", "original_name", "source", "processed", "accepted", "duplicates",
                    "rejected", "created_at", "finished_at", "error_report"]
    list_filter = ["status", "format", "source"]
    search_fields = ["original_name", "created_by"]
    readonly_fields = [field.name for field in ImportJob._meta.fields] + ["error_report"]

    @admin.display(description="errors")
    def error_report(self, job):
        if not job.rejected:
            return "-"
        return format_html('<a href="/api/imports/{}/errors.csv">errors.csv ({})</a>', job.pk, job.rejected)

    def has_add_permission(self, request):
        return False
