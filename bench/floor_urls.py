"""/bench/floor: what one single-event POST costs before TargetGrid does any work.

The same server, middleware, API-key authentication, permission and JSON parsing and rendering as
``POST /api/events``, but nothing validated, stored, rate-limited or queued. Its rate is the
ceiling of the single-event scenario on this machine (bench/README.md).
"""

from django.urls import path
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as service_urlpatterns


class FloorApi(APIView):
    def post(self, request):
        body = request.data
        event_id = body.get("event_id") if isinstance(body, dict) else None
        return Response({"status": "accepted", "event": {"event_id": event_id}}, status=status.HTTP_202_ACCEPTED)


urlpatterns = [path("bench/floor", FloorApi.as_view()), *service_urlpatterns]
