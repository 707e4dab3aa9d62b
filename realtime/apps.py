from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        # Scoring and imports notify facts after commit (config/transport.py); the WebSocket side
        # subscribes here, so neither of them imports realtime.
        from config import transport

        from . import alerts, broadcast

        transport.listen("score.changes", broadcast.on_score_changes)
        transport.listen("import.progress", broadcast.on_import_progress)
        transport.listen("rescore.progress", broadcast.on_rescore_progress)
        transport.listen("alerts.created", alerts.on_alerts_created)
        transport.listen("deliveries.updated", broadcast.on_deliveries_updated)
