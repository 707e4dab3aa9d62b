"""django-import-export resources for leads (admin import/export)."""

from import_export import fields, resources

from scoring.services import lead_max_score_set

from .models import Lead
from .services import EDITABLE_FIELDS, lead_create, lead_profile_set


class LeadResource(resources.ModelResource):
    """Import creates or updates leads by e-mail; scores are never imported (events make them).

    Rows are written through services, never by saving the imported copy of the row: a new lead
    through ``lead_create``; an existing one gets only the profile fields the row changed
    (``lead_profile_set``) and a changed cap through ``lead_max_score_set`` (which re-folds the
    score under the lead's lock). A drain scoring the lead between the import's read and its write
    is therefore never overwritten.
    """

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

    WRITABLE = (*EDITABLE_FIELDS, "max_score")

    def before_import(self, dataset, **kwargs):
        super().before_import(dataset, **kwargs)
        user = kwargs.get("user")
        self._actor = user.get_username() if user is not None else ""
        self._as_read = {}

    def before_import_row(self, row, **kwargs):
        if row.get("email"):
            row["email"] = str(row["email"]).strip().lower()

    def after_init_instance(self, instance, new, row, **kwargs):
        super().after_init_instance(instance, new, row, **kwargs)
        if not new:  # what the row is compared with when it is written
            self._as_read[instance.pk] = {name: getattr(instance, name) for name in self.WRITABLE}

    def do_instance_save(self, instance, is_create):
        if is_create:
            lead = lead_create(**{name: getattr(instance, name) for name in self.WRITABLE})
            for field in Lead._meta.concrete_fields:
                setattr(instance, field.attname, getattr(lead, field.attname))
            instance._state.adding, instance._state.db = False, lead._state.db
            return
        as_read = getattr(self, "_as_read", {}).pop(instance.pk, {})
        changed = {name: getattr(instance, name) for name in EDITABLE_FIELDS
                   if name not in as_read or getattr(instance, name) != as_read[name]}
        if changed:
            lead_profile_set(lead_id=instance.pk, fields=changed)
        if "max_score" not in as_read or instance.max_score != as_read["max_score"]:
            lead_max_score_set(lead_id=instance.pk, max_score=instance.max_score, actor=getattr(self, "_actor", ""))
