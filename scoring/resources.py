"""django-import-export resources: scoring rules (import/export) and score changes (export only)."""

from import_export import fields, resources

from .models import ScoreChange, ScoringRule
from .services import rule_save


class ScoringRuleResource(resources.ModelResource):
    class Meta:
        model = ScoringRule
        import_id_fields = ["event_type"]
        fields = ["event_type", "points", "enabled", "description"]
        export_order = fields
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def before_import_row(self, row, **kwargs):
        if row.get("event_type"):
            row["event_type"] = str(row["event_type"]).strip().upper()

    def do_instance_save(self, instance, is_create):
        # The one write path for rules (validates; applies to the next event scored).
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
