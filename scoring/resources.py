"""django-import-export resources: scoring rules (import/export) and score changes (export only)."""

import json

from import_export import fields, resources, widgets

from .models import ScoreChange, ScoringRule
from .rulesets import RULE_FIELDS
from .services import rule_save


class ConditionsWidget(widgets.JSONWidget):
    """Conditions as JSON text in CSV/XLSX cells (a list already in JSON files); blank: none."""

    def clean(self, value, row=None, **kwargs):
        if value is None or (isinstance(value, str) and not value.strip()):
            return []
        if isinstance(value, (list, dict)):
            return value
        return super().clean(value, row=row, **kwargs)

    def render(self, value, obj=None, **kwargs):
        return json.dumps(value or [], ensure_ascii=False)


class ScoringRuleResource(resources.ModelResource):
    """Rules of the draft. A row updates the rule with its ``id`` when given and present; else the
    one rule with the same event type and name (an older export without ids); else it creates a
    rule. ``id`` is never written: an unknown id creates a new rule."""

    id = fields.Field(attribute="id", column_name="id", readonly=True, widget=widgets.IntegerWidget())
    conditions = fields.Field(attribute="conditions", column_name="conditions", widget=ConditionsWidget())

    class Meta:
        model = ScoringRule
        import_id_fields = ["id"]
        fields = ["id", *RULE_FIELDS, "description"]
        export_order = fields
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def before_import_row(self, row, **kwargs):
        if row.get("event_type"):
            row["event_type"] = str(row["event_type"]).strip().upper()

    def get_instance(self, instance_loader, row):
        raw_id = row.get("id")
        if raw_id not in (None, ""):
            try:
                rule = ScoringRule.objects.filter(pk=int(float(raw_id))).first()
            except (TypeError, ValueError):
                rule = None
            if rule is not None:
                return rule
        if row.get("event_type"):
            same = list(ScoringRule.objects.filter(event_type=row["event_type"], name=(row.get("name") or "").strip())[:2])
            if len(same) == 1:
                return same[0]
        return None

    def do_instance_save(self, instance, is_create):
        # The one write path for rules (validates; the draft scores once published).
        rule_save(rule=instance)


class ScoreChangeResource(resources.ModelResource):
    lead_email = fields.Field(attribute="lead__email", column_name="lead_email", readonly=True)
    event_id = fields.Field(attribute="event__event_id", column_name="event_id", readonly=True)

    class Meta:
        model = ScoreChange
        fields = [
            "id",
            "lead",
            "lead_email",
            "event_id",
            "event_type",
            "previous_score",
            "new_score",
            "delta",
            "reason",
            "late",
            "timestamp",
            "created_at",
        ]
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("lead", "event")
