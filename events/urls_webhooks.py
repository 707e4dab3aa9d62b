from django.urls import re_path

from .webhook_apis import WebhookEventsView

urlpatterns = [
    re_path(r"^events/?$", WebhookEventsView.as_view(), name="webhook-events"),
]
