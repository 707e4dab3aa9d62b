from django.urls import path, re_path

from . import apis

urlpatterns = [
    re_path(r"^events/?$", apis.EventCreateApi.as_view(), name="api-events"),
    re_path(r"^events/batch/?$", apis.EventBatchApi.as_view(), name="api-events-batch"),
    path("events/lead/<uuid:lead_id>", apis.LeadEventsApi.as_view(), name="api-lead-events"),
    path("events/lead/<uuid:lead_id>/", apis.LeadEventsApi.as_view()),
]
