from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/scores/", consumers.ScoresConsumer.as_asgi()),
    path("ws/leads/<uuid:lead_id>/", consumers.LeadConsumer.as_asgi()),
    path("ws/imports/<int:import_id>/", consumers.ImportConsumer.as_asgi()),
    path("ws/rescore/", consumers.RescoreConsumer.as_asgi()),
    path("ws/alerts/", consumers.AlertsConsumer.as_asgi()),
]
