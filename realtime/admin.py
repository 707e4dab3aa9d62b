"""Admin of what leaves TargetGrid: webhook endpoints and their deliveries, e-mail recipients."""

from django.contrib import admin  # noqa: F401

from . import models  # noqa: F401

# --- Webhook endpoints and deliveries (realtime/outbound.py) ---


# --- E-mail alert recipients (realtime/mail.py) ---

from django import forms as _forms  # noqa: E402
from django.contrib import messages as _messages  # noqa: E402

from . import mail as _mail  # noqa: E402


class AlertRecipientForm(_forms.ModelForm):
    class Meta:
        model = models.AlertRecipient
        fields = ["email", "enabled", "event_kinds", "stages", "only_up"]

    def clean_event_kinds(self):
        kinds = self.cleaned_data.get("event_kinds") or []
        if not isinstance(kinds, list) or any(kind not in _mail.KINDS for kind in kinds):
            raise _forms.ValidationError(f"A list of kinds among {', '.join(_mail.KINDS)} (empty: all).")
        return kinds

    def clean_stages(self):
        stages = self.cleaned_data.get("stages") or []
        if not isinstance(stages, list) or any(not isinstance(name, str) or not name.strip() for name in stages):
            raise _forms.ValidationError('A list of stage names, e.g. ["MQL", "SQL"] (empty: every stage).')
        return [name.strip() for name in stages]


@admin.register(models.AlertRecipient)
class AlertRecipientAdmin(admin.ModelAdmin):
    form = AlertRecipientForm
    list_display = ["email", "enabled", "kinds_display", "stages_display", "only_up", "last_sent_at", "last_error"]
    list_filter = ["enabled", "only_up"]
    search_fields = ["email"]
    readonly_fields = ["cursor", "last_sent_at", "last_error", "created_at"]
    actions = ["send_test_email"]

    @admin.display(description="Kinds")
    def kinds_display(self, obj):
        return ", ".join(obj.event_kinds) if obj.event_kinds else "all"

    @admin.display(description="Stages")
    def stages_display(self, obj):
        return ", ".join(obj.stages) if obj.stages else "all"

    def save_model(self, request, obj, form, change):
        if change:  # the cursor, the window and the last error belong to the sender: never overwritten
            obj.save(update_fields=[name for name in form.Meta.fields if name in form.changed_data] or ["enabled"])
        else:
            # A new recipient starts from now: it is not sent the whole history of alerts.
            obj.cursor = _mail.cursor_now()
            obj.save()

    @admin.action(description="Send test e-mail", permissions=["change"])
    def send_test_email(self, request, queryset):
        for recipient in queryset:
            error = _mail.recipient_test_send(recipient=recipient)
            if error:
                self.message_user(request, f"{recipient.email}: {error}", _messages.ERROR)
            else:
                self.message_user(request, f"Test e-mail sent to {recipient.email}.", _messages.SUCCESS)
