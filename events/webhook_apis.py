"""``POST /webhooks/events``: one event or an array (the /api/events schema) from a WebhookSource.

A thin adapter: authenticate the source (events.webhooks), rate-limit it, then event_ingest with
the source's tag and allow-list. Every rejection is logged with its reason and stores nothing.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .http import BodyError, json_error, parse_json, read_body
from .ratelimit import check_or_429, client_ip_key
from .serializers import ingest_results_body
from .services import event_ingest
from .validation import text_problem
from .webhooks import WebhookRejected, webhook_authenticate

logger = logging.getLogger(__name__)


def _rejected_field(reason: str) -> str:
    """The header (or parameter) a rejection is about, so the answer names it."""
    for name in ("webhook-timestamp", "webhook-signature", "webhook-id", "source"):
        if name in reason or (name == "webhook-signature" and "signature" in reason):
            return name
    return "authorization"


@method_decorator(csrf_exempt, name="dispatch")
class WebhookEventsView(View):
    http_method_names = ["post", "options"]

    def post(self, request):
        source_name = request.GET.get("source") or None
        if source_name and text_problem(source_name):
            return json_error("The source parameter is not a valid name.", status=400,
                              errors={"source": [text_problem(source_name)]})
        try:
            body = read_body(request, limit=settings.TARGETGRID_MAX_BODY_BYTES)
        except BodyError as exc:
            logger.warning("webhook rejected: %s (source=%s, %s)", exc.detail, source_name, client_ip_key(request))
            return exc.response()
        try:
            source = webhook_authenticate(request_headers=request.headers, body=body, source_name=source_name)
        except WebhookRejected as exc:
            name = exc.source.name if exc.source else source_name
            logger.warning("webhook rejected (%d): %s (source=%s, %s)", exc.status, exc.reason, name,
                           client_ip_key(request))
            if exc.status == 401:
                limited = check_or_429(request, group="webhook", key=None, rate_setting="", what="")
                if limited:
                    return limited
            return json_error(f"Webhook rejected: {exc.reason}.", status=exc.status,
                              errors={_rejected_field(exc.reason): [exc.reason]})

        limited = check_or_429(request, group="webhook", key=f"webhook-source:{source.pk}",
                               rate_setting="TARGETGRID_RATE_WEBHOOK", what="webhook source")
        if limited:
            logger.warning("webhook rejected (429): rate limit (source=%s)", source.name)
            return limited
        try:
            payload = parse_json(body)
        except BodyError as exc:
            logger.warning("webhook rejected (400): %s (source=%s)", exc.detail, source.name)
            return exc.response()
        items = [payload] if isinstance(payload, dict) else payload
        if not isinstance(items, list) or not items:
            logger.warning("webhook rejected (400): not an event object or a non-empty array (source=%s)", source.name)
            return json_error("The body must be one event object or a non-empty array of events.", status=400,
                              errors={"body": ["expected a JSON object or a non-empty array"]})
        limit = settings.TARGETGRID_BATCH_MAX
        if len(items) > limit:
            logger.warning("webhook rejected (413): %d events (source=%s)", len(items), source.name)
            return json_error(f"A delivery holds at most {limit} events; this one has {len(items)}.", status=413,
                              errors={"body": [f"at most {limit} events per delivery"]})

        result = event_ingest(items=items, source=source.source_tag,
                              allowed_event_types=source.allowed_event_types or None)
        body, code = ingest_results_body(result)
        for item in result.items:
            if item.status == "rejected":
                logger.warning("webhook event rejected (source=%s, index=%d, event_id=%s): %s", source.name,
                               item.index, item.event_id, item.errors)
        return JsonResponse(body, status=code)
