"""Admin of what leaves TargetGrid: webhook endpoints and their deliveries, e-mail recipients."""

from django.contrib import admin

from . import models

# --- Webhook endpoints and deliveries (realtime/outbound.py) ---

from django import forms  # noqa: E402
from django.contrib import messages  # noqa: E402
from django.utils.html import format_html  # noqa: E402

from . import outbound  # noqa: E402


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", help_text="http:// or https:// only.")
    secret = forms.CharField(
        required=False, strip=True,
        help_text="Leave blank to generate one (shown once). Otherwise whsec_ followed by base64 (16+ bytes).",
    )

    class Meta:
        model = models.WebhookEndpoint
        fields = ["name", "url", "description", "secret", "event_kinds", "stages"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # never shown again: the field only replaces it when filled
            self.initial["secret"] = ""
            self.fields["secret"].help_text = "Leave blank to keep the current secret (use Rotate secret to change it with an overlap)."

    def clean_url(self):
        try:
            return outbound.url_check(self.cleaned_data["url"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_secret(self):
        value = self.cleaned_data.get("secret") or ""
        if not value:
            return self.instance.secret if self.instance.pk else ""
        try:
            outbound.secret_key_bytes(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_event_kinds(self):
        try:
            return outbound.kinds_check(self.cleaned_data.get("event_kinds") or [])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_stages(self):
        try:
            return outbound.stages_check(self.cleaned_data.get("stages") or [])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(models.WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "url", "status", "consecutive_failures", "last_success_at", "last_failure_at"]
    list_filter = ["status"]
    search_fields = ["name", "url"]
    readonly_fields = ["secret_masked", "status", "status_reason", "status_changed_at", "consecutive_failures",
                       "last_success_at", "last_failure_at", "previous_secret_expires_at", "created_at", "updated_at"]
    actions = ["send_test_event", "resume", "rotate_secret", "disable"]

    @admin.display(description="current secret")
    def secret_masked(self, obj):
        return outbound.secret_mask(obj.secret) if obj.secret else "-"

    def save_model(self, request, obj, form, change):
        fields = list(form.changed_data) if change else None
        if change and "secret" in (fields or []) and not form.cleaned_data.get("secret"):
            fields.remove("secret")
        generated = outbound.endpoint_save(endpoint=obj, fields=fields)
        if generated:
            self.message_user(request, format_html(
                "Signing secret of {} (shown once, copy it now): <code>{}</code>", obj.name, generated),
                messages.WARNING)

    @admin.action(description="Send test event")
    def send_test_event(self, request, queryset):
        for endpoint in queryset:
            delivery = outbound.endpoint_send_test(endpoint_id=endpoint.pk)
            level = messages.SUCCESS if delivery.status == models.DeliveryStatus.SUCCEEDED else messages.ERROR
            self.message_user(request, f"{endpoint.name}: test event {delivery.msg_id} {delivery.get_status_display()}"
                              f" (HTTP {delivery.last_status_code or '-'}) {delivery.last_error}".rstrip(), level)

    @admin.action(description="Resume (pending deliveries are sent now)")
    def resume(self, request, queryset):
        count = outbound.endpoint_resume(endpoint_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} endpoint(s) resumed.", messages.SUCCESS)

    @admin.action(description="Rotate secret (the old one keeps signing during the overlap)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            secret = outbound.endpoint_rotate_secret(endpoint_id=endpoint.pk)
            self.message_user(request, format_html(
                "New signing secret of {} (shown once, copy it now): <code>{}</code>", endpoint.name, secret),
                messages.WARNING)

    @admin.action(description="Disable (pending deliveries are cancelled)")
    def disable(self, request, queryset):
        count = outbound.endpoint_disable(endpoint_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} endpoint(s) disabled.", messages.SUCCESS)


class DeliveryAttemptInline(admin.TabularInline):
    model = models.DeliveryAttempt
    extra = 0
    can_delete = False
    ordering = ["number"]
    fields = ["number", "started_at", "outcome", "status_code", "latency_ms", "retry_after_seconds",
              "next_attempt_at", "error", "response_excerpt"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["msg_id", "endpoint", "kind", "status", "attempts", "next_attempt_at", "last_status_code",
                    "created_at", "delivered_at"]
    list_filter = ["status", "endpoint", "kind"]
    search_fields = ["msg_id"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]
    actions = ["resend"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Resend (a new series of attempts, same webhook-id)", permissions=["view"])
    def resend(self, request, queryset):
        count = outbound.deliveries_resend(delivery_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} deliveries queued to be sent again.", messages.SUCCESS)


# --- E-mail alert recipients (realtime/mail.py) ---
