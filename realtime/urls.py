from django.urls import re_path

from . import apis

urlpatterns = [
    re_path(r"^alerts/?$", apis.AlertListApi.as_view(), name="api-alerts"),
    re_path(r"^webhook-deliveries/?$", apis.DeliveryListApi.as_view(), name="api-webhook-deliveries"),
]
