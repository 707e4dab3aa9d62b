from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Lead profiles change in leads.services, which announces it after commit; the fit score
        # (a rule-set matter) is recomputed here, so leads never imports scoring.
        from config import transport

        from . import services

        transport.listen("lead.profile_changed", services.leads_fit_refresh_notified)
