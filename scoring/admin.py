"""The scoring admin: the draft rule set (behaviour rules, fit rules, settings), the read-only
history of published versions with their diffs, Review & publish (diff + preview), and rescore
jobs with a live progress page. Writes go through services; publishing through
``scoring.rescoring.ruleset_publish``."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from import_export.admin import ExportMixin, ImportExportModelAdmin
from import_export.formats.base_formats import CSV, JSON, XLSX

from leads.models import Lead

from .models import (
    FitRule,
    RescoreJob,
    RescoreKind,
    RuleSetVersion,
    ScoreChange,
    ScoringRule,
    ScoringSettings,
    Stage,
    StageChange,
    StageSettings,
)
from .preview import ruleset_preview
from .rescoring import NothingToPublish, rescore_job_payload, ruleset_publish
from .resources import ScoreChangeResource, ScoringRuleResource
from . import engine
from .rulesets import (
    FIT_RULE_FIELDS,
    RULE_FIELDS,
    current_version_number,
    draft_changes,
    settings_draft,
    snapshot_diff,
    version_snapshot,
)
from .services import fit_rule_save, rule_save, scoring_settings_save
from .stages import name_taken, stage_delete, stage_save, stage_settings_save

IMPORT_EXPORT_FORMATS = [CSV, JSON, XLSX]
PUBLISH_PERMISSION = "scoring.add_rulesetversion"

CONDITIONS_HELP = (
    "A JSON list; every condition must hold. Each is "
    '{"field": F, "op": OP, "value": V, "ignore_case": false}. OP is one of equals, not_equals, '
    "contains, starts_with, regex, in, greater, less, exists. Example: "
    '[{"field": "metadata.url", "op": "contains", "value": "/pricing"}, '
    '{"field": "source", "op": "in", "value": ["api", "webhook"]}]. Empty list: always.'
)
FIT_CONDITIONS_HELP = (
    "A JSON list; every condition must hold. Fields: email, email_domain, free_mail, first_name, "
    "last_name, company, job_title, phone. Example: "
    '[{"field": "free_mail", "op": "equals", "value": false}, '
    '{"field": "job_title", "op": "contains", "value": "director", "ignore_case": true}].'
)


class PrettyJSONField(forms.JSONField):
    """The conditions as indented JSON in a monospace textarea."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={
            "rows": 8, "class": "vLargeTextField", "spellcheck": "false",
            "style": "font-family: monospace; width: 100%; max-width: 60em; box-sizing: border-box;",
        }))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


def conditions_text(conditions) -> str:
    parts = []
    for item in conditions or []:
        if not isinstance(item, dict):
            continue
        value = item.get("value")
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else f'"{value}"'
        parts.append(f"{item.get('field')} {item.get('op')} {shown}" + (" (any case)" if item.get("ignore_case") else ""))
    return " and ".join(parts) or "always"


def value_text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list) and all(isinstance(item, dict) and "op" in item for item in value):
        return conditions_text(value)
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def change_rows(changes: list[dict]) -> list[dict]:
    """A diff (``rulesets.snapshot_diff``) as table rows: one per changed field, ``old -> new``."""
    rows = []
    # In the rules' own field order: PostgreSQL's jsonb does not keep an object's key order.
    rank = {name: index for index, name in enumerate(dict.fromkeys((*RULE_FIELDS, *FIT_RULE_FIELDS)))}
    for change in changes or []:
        stored = change.get("fields") or {}
        fields = {name: stored[name] for name in sorted(stored, key=lambda name: (rank.get(name, len(rank)), name))}
        if change.get("change") == "added":
            fields = {name: pair for name, pair in fields.items() if pair[1] not in (None, [], "")}
        elif change.get("change") == "removed":
            fields = {name: pair for name, pair in fields.items() if pair[0] not in (None, [], "")}
        for index, (name, (old, new)) in enumerate(fields.items()):
            rows.append({
                "first": index == 0, "span": len(fields), "kind": change.get("kind", "").replace("_", " "),
                "change": change.get("change"), "label": change.get("label"), "key": change.get("key"),
                "field": name, "old": value_text(old), "new": value_text(new),
            })
    return rows


def draft_banner_context(request) -> dict:
    return {
        "draft_changes_count": len(draft_changes()),
        "can_publish": request.user.has_perm(PUBLISH_PERMISSION),
        "publish_url": reverse("admin:scoring_rulesetversion_publish"),
    }


# --- The draft -------------------------------------------------------------------------------


class ScoringRuleForm(forms.ModelForm):
    conditions = PrettyJSONField(required=False, help_text=CONDITIONS_HELP)

    class Meta:
        model = ScoringRule
        fields = "__all__"

    def clean_conditions(self):
        return self.cleaned_data.get("conditions") or []


@admin.register(ScoringRule)
class ScoringRuleAdmin(ImportExportModelAdmin):
    """Behaviour rules of the draft: edits score nothing until the draft is published."""

    form = ScoringRuleForm
    resource_classes = [ScoringRuleResource]
    formats = IMPORT_EXPORT_FORMATS
    change_list_template = "admin/scoring/draft_change_list.html"  # import-export extends it
    list_display = ["label", "event_type", "points", "priority", "enabled", "conditions_summary", "cap", "decay"]
    list_display_links = ["label"]
    list_editable = ["points", "priority", "enabled"]
    list_filter = ["enabled", "event_type"]
    search_fields = ["name", "event_type", "description"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "event_type", "points", "priority", "enabled", "description"]}),
        ("Conditions", {"fields": ["conditions"]}),
        ("Frequency cap", {"fields": ["cap_count", "cap_window_seconds"]}),
        ("Decay", {"fields": ["half_life_days", "expire_after_days"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="rule", ordering="name")
    def label(self, obj):
        return obj.name or obj.event_type

    @admin.display(description="conditions")
    def conditions_summary(self, obj):
        return conditions_text(obj.conditions)

    @admin.display(description="cap")
    def cap(self, obj):
        if obj.cap_count is None:
            return "—"
        if obj.cap_window_seconds is None:
            return f"{obj.cap_count} ever"
        window = obj.cap_window_seconds
        unit = "day" if window == 86400 else "hour" if window == 3600 else f"{window} s"
        return f"{obj.cap_count} per {unit}"

    @admin.display(description="decay")
    def decay(self, obj):
        parts = []
        if obj.half_life_days:
            parts.append(f"half-life {obj.half_life_days:g} d")
        if obj.expire_after_days:
            parts.append(f"expires after {obj.expire_after_days:g} d")
        return ", ".join(parts) or "—"

    def save_model(self, request, obj, form, change):
        rule_save(rule=obj)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**draft_banner_context(request), **(extra_context or {})})


class FitRuleForm(forms.ModelForm):
    conditions = PrettyJSONField(required=False, help_text=FIT_CONDITIONS_HELP)

    class Meta:
        model = FitRule
        fields = "__all__"

    def clean_conditions(self):
        return self.cleaned_data.get("conditions") or []


@admin.register(FitRule)
class FitRuleAdmin(admin.ModelAdmin):
    form = FitRuleForm
    change_list_template = "admin/scoring/draft_change_list.html"
    list_display = ["label", "points", "priority", "enabled", "conditions_summary"]
    list_display_links = ["label"]
    list_editable = ["points", "priority", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="rule", ordering="name")
    def label(self, obj):
        return obj.name or f"fit rule {obj.pk}"

    @admin.display(description="conditions")
    def conditions_summary(self, obj):
        return conditions_text(obj.conditions)

    def save_model(self, request, obj, form, change):
        fit_rule_save(rule=obj)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**draft_banner_context(request), **(extra_context or {})})


@admin.register(ScoringSettings)
class ScoringSettingsAdmin(admin.ModelAdmin):
    """The draft's settings: one row, so the list goes straight to its form."""

    fieldsets = [
        (None, {"fields": ["match_mode"]}),
        ("Fit letter (fit score at least)", {"fields": ["grade_fit_a", "grade_fit_b", "grade_fit_c"]}),
        ("Engagement digit (behaviour score at least)", {"fields": ["grade_score_1", "grade_score_2", "grade_score_3"]}),
    ]
    change_form_template = "admin/scoring/scoringsettings/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        settings_draft()
        return HttpResponseRedirect(reverse("admin:scoring_scoringsettings_change", args=[1]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if str(object_id) != "1":
            raise Http404("the rule-set settings are one row (1)")
        settings_draft()
        return super().change_view(request, object_id, form_url, {**draft_banner_context(request), **(extra_context or {})})

    def save_model(self, request, obj, form, change):
        scoring_settings_save(draft=obj)


# --- Published versions ------------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody edits in the admin (published versions, rescore jobs, the audit log)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RuleSetVersion)
class RuleSetVersionAdmin(ReadOnlyAdmin):
    """Published versions are immutable: history, detail with its diff, compare, and publish."""

    list_display = ["version", "published_by", "published_at", "note", "changes_count"]
    list_display_links = ["version"]
    search_fields = ["note", "published_by"]
    change_list_template = "admin/scoring/rulesetversion/change_list.html"

    @admin.display(description="version", ordering="number")
    def version(self, obj):
        return f"v{obj.number}"

    @admin.display(description="changes")
    def changes_count(self, obj):
        return len(obj.changes or [])

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("compare/", wrap(self.compare_view), name="scoring_rulesetversion_compare"),
            path("publish/", wrap(self.publish_view), name="scoring_rulesetversion_publish"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**draft_banner_context(request), **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The detail page: the snapshot and the changes it made (read-only for everybody)."""
        if request.method != "GET":
            raise PermissionDenied("published versions cannot be changed")
        version = get_object_or_404(RuleSetVersion, pk=object_id)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        previous = RuleSetVersion.objects.filter(number__lt=version.number).order_by("-number").first()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Rules v{version.number}",
            "version": version,
            "previous": previous,
            "rules": [dict(item, conditions_text=conditions_text(item.get("conditions"))) for item in version.rules],
            "fit_rules": [dict(item, conditions_text=conditions_text(item.get("conditions"))) for item in version.fit_rules],
            "grades": sorted((version.grades or {}).items()),
            "change_rows": change_rows(version.changes),
        }
        return TemplateResponse(request, "admin/scoring/rulesetversion/detail.html", context)

    def compare_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        versions = list(RuleSetVersion.objects.order_by("-number").values_list("number", flat=True))
        numbers = set(versions)

        def chosen(name, default):
            try:
                value = int(request.GET.get(name, default))
            except (TypeError, ValueError):
                return None
            return value if value in numbers else None

        default_to = versions[0] if versions else None
        default_from = versions[1] if len(versions) > 1 else default_to
        number_from, number_to = chosen("from", default_from), chosen("to", default_to)
        error = ""
        rows = []
        if versions and (number_from is None or number_to is None):
            error = "Choose two published versions."
        elif versions:
            old = version_snapshot(RuleSetVersion.objects.get(number=number_from))
            new = version_snapshot(RuleSetVersion.objects.get(number=number_to))
            rows = change_rows(snapshot_diff(old, new))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Compare rule-set versions",
            "versions": versions,
            "number_from": number_from,
            "number_to": number_to,
            "change_rows": rows,
            "error": error,
        }
        return TemplateResponse(request, "admin/scoring/rulesetversion/compare.html", context, status=400 if error else 200)

    def publish_view(self, request):
        """Review & publish: the draft's diff, the preview, a note, and the Publish button."""
        if not request.user.has_perm(PUBLISH_PERMISSION):
            raise PermissionDenied
        if request.method == "POST":
            note = request.POST.get("note", "").strip()[:2000]
            try:
                version = ruleset_publish(actor=request.user.get_username(), note=note)
            except NothingToPublish as exc:
                self.message_user(request, f"Nothing to publish: {exc}.", messages.WARNING)
                return HttpResponseRedirect(request.path)
            self.message_user(request, f"Published rules v{version.number}; rescoring the leads.", messages.SUCCESS)
            job = (RescoreJob.objects.filter(kind=RescoreKind.RESCORE, version=version.number, lead_id__isnull=True)
                   .order_by("-pk").first())
            if job is None:
                return HttpResponseRedirect(reverse("admin:scoring_rulesetversion_change", args=[version.pk]))
            return HttpResponseRedirect(reverse("admin:scoring_rescorejob_change", args=[job.pk]))
        changes = draft_changes()
        try:
            preview = ruleset_preview()
        except engine.RuleError as exc:  # a regex condition timed out on a stored event
            current = current_version_number()
            preview = {"error": str(exc), "current_version": current, "draft_version": current + 1, "distribution": []}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Review & publish the draft",
            "change_rows": change_rows(changes),
            "changes_count": len(changes),
            "preview": preview,
            "distribution_max": max([1, *(max(row["current"], row["new"]) for row in preview["distribution"])]),
        }
        return TemplateResponse(request, "admin/scoring/rulesetversion/publish.html", context)


def _when(value) -> str | None:
    """A time as the admin's templates show it (the active time zone, DATETIME_FORMAT)."""
    return date_format(localtime(value), "DATETIME_FORMAT") if value else None


# --- Rescore jobs ------------------------------------------------------------------------------


@admin.register(RescoreJob)
class RescoreJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "version_label", "status", "progress", "changed", "created_by", "created_at", "started_at",
                    "finished_at"]
    list_filter = ["kind", "status"]
    list_display_links = ["id", "version_label"]

    @admin.display(description="version", ordering="version")
    def version_label(self, obj):
        prefix = "stages v" if obj.kind == RescoreKind.RESTAGE else "v"
        return f"{prefix}{obj.version}" + (f" (lead {obj.lead_id})" if obj.lead_id else "")

    @admin.display(description="progress")
    def progress(self, obj):
        payload = rescore_job_payload(obj)
        return format_html("{} / {} ({}%)", payload["done"], payload["total"], payload["percent"])

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:job_id>/progress.json", wrap(self.progress_json), name="scoring_rescorejob_progress"),
            *super().get_urls(),
        ]

    def progress_json(self, request, job_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(RescoreJob, pk=job_id)
        return JsonResponse({
            **rescore_job_payload(job),
            "status_display": job.get_status_display(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "started_at_display": _when(job.started_at),
            "finished_at_display": _when(job.finished_at),
        })

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The progress page (live over the ``rescore`` WebSocket group, polling as a fallback)."""
        if request.method != "GET":
            raise PermissionDenied("rescore jobs are read-only")
        job = get_object_or_404(RescoreJob, pk=object_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        restage = job.kind == RescoreKind.RESTAGE
        version = None if restage else RuleSetVersion.objects.filter(number=job.version).first()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Restage to stage settings v{job.version}" if restage else f"Rescore to rules v{job.version}",
            "job": job,
            "payload": rescore_job_payload(job),
            "version": version,
            "progress_url": reverse("admin:scoring_rescorejob_progress", args=[job.pk]),
        }
        return TemplateResponse(request, "admin/scoring/rescorejob/progress.html", context)


# --- The audit log -----------------------------------------------------------------------------


@admin.register(ScoreChange)
class ScoreChangeAdmin(ExportMixin, ReadOnlyAdmin):
    """The audit log: append-only, so read-only here (export allowed)."""

    resource_classes = [ScoreChangeResource]
    formats = IMPORT_EXPORT_FORMATS
    list_display = ["lead", "event_type", "previous_score", "new_score", "delta", "rule_version", "late", "timestamp", "created_at"]
    list_filter = ["event_type", "late", "created_at"]
    search_fields = ["lead__email", "event__event_id", "reason"]
    list_select_related = ["lead"]
    raw_id_fields = ["lead", "event"]
    date_hierarchy = "created_at"
    show_full_result_count = False



# --- Stages (docs/stages-and-alerts.md) -----------------------------------------------------------


def restage_message(request, admin_view, changed) -> None:
    """"Restaging N leads in the background", linking to the job's progress page."""
    if changed.job is None:
        return
    url = reverse("admin:scoring_rescorejob_change", args=[changed.job.pk])
    admin_view.message_user(request, format_html(
        'Stage settings v{}: restaging {} lead{} in the background (<a href="{}">progress</a>).',
        changed.version, changed.outdated, "" if changed.outdated == 1 else "s", url,
    ), messages.INFO)


class StageForm(forms.ModelForm):
    class Meta:
        model = Stage
        fields = ["name", "position", "min_score", "min_fit", "color", "description"]

    def clean_name(self):
        name = (self.cleaned_data.get("name") or "").strip()
        probe = Stage(pk=self.instance.pk, name=name)
        if name_taken(probe):
            raise forms.ValidationError("Another stage has this name (names compare without case or accents).")
        return name


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    """The lead stages, coldest first: a lead is in the hottest stage whose thresholds it meets.
    Every save bumps the stage settings and restages the leads in the background."""

    form = StageForm
    list_display = ["name", "position", "min_score", "min_fit", "colour", "lead_count"]
    list_display_links = ["name"]
    ordering = ["position", "id"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request):
        counts = (Lead.objects.filter(stage=OuterRef("name")).order_by().values("stage")
                  .annotate(n=Count("pk")).values("n"))
        return super().get_queryset(request).annotate(
            leads_in_stage=Coalesce(Subquery(counts, output_field=IntegerField()), 0)
        )

    @admin.display(description="colour", ordering="color")
    def colour(self, obj):
        return obj.get_color_display()

    @admin.display(description="leads", ordering="leads_in_stage")
    def lead_count(self, obj):
        return getattr(obj, "leads_in_stage", None)

    def save_model(self, request, obj, form, change):
        _stage, changed = stage_save(stage=obj, actor=request.user.get_username())
        restage_message(request, self, changed)

    def delete_model(self, request, obj):
        restage_message(request, self, stage_delete(stage=obj, actor=request.user.get_username()))

    def delete_queryset(self, request, queryset):
        changed = None
        for stage in queryset.order_by("pk"):
            changed = stage_delete(stage=stage, actor=request.user.get_username())
        if changed is not None:
            restage_message(request, self, changed)


class StageSettingsForm(forms.ModelForm):
    score_thresholds = forms.JSONField(
        required=False, help_text="A JSON list of whole numbers, e.g. [50, 150]: a lead crossing one (up or down) "
        "is a lead.score_crossed alert. Empty list: none.",
    )

    class Meta:
        model = StageSettings
        fields = ["score_thresholds"]

    def clean_score_thresholds(self):
        return self.cleaned_data.get("score_thresholds") or []


@admin.register(StageSettings)
class StageSettingsAdmin(admin.ModelAdmin):
    """The stage settings: one row (the version and the score thresholds); the list goes straight to it."""

    form = StageSettingsForm
    fields = ["score_thresholds", "version", "updated_at"]
    readonly_fields = ["version", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        StageSettings.objects.get_or_create(pk=1)
        return HttpResponseRedirect(reverse("admin:scoring_stagesettings_change", args=[1]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if str(object_id) != "1":
            raise Http404("the stage settings are one row (1)")
        StageSettings.objects.get_or_create(pk=1)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        _row, changed = stage_settings_save(settings_row=obj, actor=request.user.get_username())
        restage_message(request, self, changed)


@admin.register(StageChange)
class StageChangeAdmin(ReadOnlyAdmin):
    """The stage audit: append-only, so read-only here."""

    list_display = ["lead", "from_stage", "to_stage", "direction", "cause", "score", "fit_score", "event_ref",
                    "stage_version", "created_at"]
    list_filter = ["cause", "direction", "to_stage"]
    search_fields = ["lead__email", "event_ref"]
    list_select_related = ["lead"]
    raw_id_fields = ["lead", "event"]
    date_hierarchy = "created_at"
    show_full_result_count = False
