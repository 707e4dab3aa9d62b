from django.urls import path, re_path

from . import apis, import_apis

urlpatterns = [
    re_path(r"^events/?$", apis.EventCreateApi.as_view(), name="api-events"),
    re_path(r"^events/batch/?$", apis.EventBatchApi.as_view(), name="api-events-batch"),
    re_path(r"^events/upload/?$", import_apis.EventUploadApi.as_view(), name="api-events-upload"),
    re_path(r"^imports/(?P<import_id>[0-9]+)/?$", import_apis.ImportJobApi.as_view(), name="api-import"),
    re_path(r"^imports/(?P<import_id>[0-9]+)/errors\.csv$", import_apis.ImportErrorsCsvApi.as_view(),
            name="api-import-errors"),
    re_path(r"^events/(?P<reference>.+?)/retry/?$", apis.EventRetryApi.as_view(), name="api-event-retry"),
    path("events/lead/<uuid:lead_id>", apis.LeadEventsApi.as_view(), name="api-lead-events"),
    path("events/lead/<uuid:lead_id>/", apis.LeadEventsApi.as_view()),
]
