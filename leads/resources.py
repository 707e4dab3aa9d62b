"""django-import-export resources for leads (admin import/export)."""

from import_export import fields, resources

from .models import Lead


class LeadResource(resources.ModelResource):
    """Import creates or updates leads by e-mail; scores are never imported (events make them)."""

    current_score = fields.Field(attribute="current_score", column_name="current_score", readonly=True)
    created_at = fields.Field(attribute="created_at", column_name="created_at", readonly=True)

    class Meta:
        model = Lead
        import_id_fields = ["email"]
        fields = ["email", "first_name", "last_name", "company", "phone", "max_score", "current_score", "created_at"]
        export_order = fields
        clean_model_instances = True  # model validation: row-level errors in the preview
        skip_unchanged = True
        report_skipped = True

    def before_import_row(self, row, **kwargs):
        if row.get("email"):
            row["email"] = str(row["email"]).strip().lower()
