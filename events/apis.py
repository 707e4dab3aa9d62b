from django.conf import settings
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_response
from config.pagination import paginate
from leads.models import Lead
from scoring.services import events_retry

from .models import EventStatus
from .selectors import event_by_reference, events_for_lead
from .ratelimit import RateLimitedMixin
from .serializers import EventOutputSerializer, ingest_results_body
from .services import ACCEPTED, DUPLICATE, event_ingest


class EventCreateApi(RateLimitedMixin, APIView):
    """POST /api/events: one event. 202 accepted, 200 duplicate, 4xx naming the field."""

    def post(self, request):
        if not isinstance(request.data, dict):
            return error_response(
                "The body must be one JSON event object (use /api/events/batch for a list).",
                status_code=status.HTTP_400_BAD_REQUEST,
                errors={"non_field_errors": ["expected a JSON object"]},
            )
        result = event_ingest(items=[request.data], source="api", with_events=True).items[0]
        if result.status == ACCEPTED:
            return Response(
                {"status": "accepted", "event": EventOutputSerializer(result.event).data},
                status=status.HTTP_202_ACCEPTED,
            )
        if result.status == DUPLICATE:
            return Response({"status": "duplicate", "event": EventOutputSerializer(result.event).data})
        fields = ", ".join(result.errors)
        return error_response(
            f"Invalid event: {fields}.",
            status_code=status.HTTP_404_NOT_FOUND if result.lead_not_found else status.HTTP_400_BAD_REQUEST,
            errors=result.errors,
        )


class EventBatchApi(RateLimitedMixin, APIView):
    """POST /api/events/batch: a JSON array or {"events": [...]}; one result per item."""

    def post(self, request):
        items = request.data.get("events") if isinstance(request.data, dict) else request.data
        if not isinstance(items, list):
            return error_response(
                'The body must be a JSON array of events or {"events": [...]}.',
                status_code=status.HTTP_400_BAD_REQUEST,
                errors={"events": ["expected a list of events"]},
            )
        limit = settings.TARGETGRID_BATCH_MAX
        if len(items) > limit:
            return error_response(
                f"A batch holds at most {limit} events; this one has {len(items)}. Split it, or upload a file.",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                errors={"events": [f"at most {limit} events per batch"]},
            )
        if not items:
            return error_response(
                "The batch is empty.", status_code=status.HTTP_400_BAD_REQUEST, errors={"events": ["empty list"]}
            )
        result = event_ingest(items=items, source="batch")
        body, code = ingest_results_body(result)
        if code == status.HTTP_400_BAD_REQUEST:
            body["detail"] = "Every event in the batch was rejected; see results[].errors."
        return Response(body, status=code)


class LeadEventsApi(APIView):
    def get(self, request, lead_id):
        get_object_or_404(Lead.objects.only("id"), pk=lead_id)
        return paginate(request, self, events_for_lead(lead_id=lead_id), EventOutputSerializer)


class EventRetryApi(APIView):
    """POST /api/events/<id or event_id>/retry: send a failed event back to scoring.

    200 with the event (pending again, or already re-scored), 404 if there is no such event, 409 if
    it is not failed (only failed events are retried; scoring a processed event twice is refused).
    """

    def post(self, request, reference):
        event = event_by_reference(reference=reference)
        if event is None:
            return error_response(f"No event {reference!r}.", status_code=status.HTTP_404_NOT_FOUND)
        if event.status != EventStatus.FAILED or not events_retry(event_ids=[event.pk]):
            event.refresh_from_db(fields=["status"])
            return error_response(
                f"Only a failed event can be retried; this one is {event.status}.",
                status_code=status.HTTP_409_CONFLICT,
                errors={"status": [f"is {event.status}, not failed"]},
            )
        event.refresh_from_db()
        return Response({"status": "retried", "event": EventOutputSerializer(event).data})
