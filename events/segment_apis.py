"""Segment HTTP Tracking API compatible endpoints: ``POST /v1/{track,identify,page,screen,alias,group}``
and ``POST /v1/batch`` (also ``/v1/import``). A thin adapter over events.segment.

Answers: 200 ``{"success": true, ...}`` (per message results in ``results``); 400 naming the field
for bad JSON, a message over 32 KB, a batch over 500 KB (Segment's limits) or when every message
was rejected; 401 for a missing/unknown write key; 429 over the rate limit.
"""

from __future__ import annotations

import logging

from django.http import JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .http import BodyError, BodyTooLarge, json_error, parse_json, read_body
from .ratelimit import check_or_429
from .segment import (BATCH_MAX_BYTES, MESSAGE_MAX_BYTES, SegmentAuthError, segment_authenticate,
                      segment_messages_ingest, write_key_from)
from .services import REJECTED
from .validation import parse_timestamp

logger = logging.getLogger(__name__)


@method_decorator(csrf_exempt, name="dispatch")
class SegmentView(View):
    http_method_names = ["post", "options"]
    kind = "batch"

    def post(self, request):
        received_at = timezone.now()
        limit = BATCH_MAX_BYTES if self.kind == "batch" else MESSAGE_MAX_BYTES
        try:
            raw = read_body(request, limit=limit, too_large_status=400)
            body = parse_json(raw)
        except BodyTooLarge:
            what = "batch" if self.kind == "batch" else "message"
            return json_error(f"The {what} is larger than {limit // 1024} KB (Segment's limit).", status=400,
                              errors={"body": [f"a {what} is at most {limit // 1024} KB"]})
        except BodyError as exc:
            return exc.response()
        try:
            source = segment_authenticate(write_key=write_key_from(
                authorization=request.META.get("HTTP_AUTHORIZATION", ""), body=body))
        except SegmentAuthError as exc:
            logger.warning("segment request rejected (401): %s", exc)
            limited = check_or_429(request, group="segment", key=None, rate_setting="", what="")
            return limited or json_error(f"Unauthorized: {exc}.", status=401, errors={"writeKey": [str(exc)]})
        limited = check_or_429(request, group="segment", key=f"segment-source:{source.pk}",
                               rate_setting="TARGETGRID_RATE_SEGMENT", what="write key")
        if limited:
            return limited
        if not isinstance(body, dict):
            return json_error("The body must be a JSON object.", status=400, errors={"body": ["expected an object"]})

        batch_sent_at = None
        if self.kind == "batch":
            messages = body.get("batch")
            if not isinstance(messages, list) or not messages:
                return json_error('The body must be {"batch": [messages...]}.', status=400,
                                  errors={"batch": ["expected a non-empty list of messages"]})
            if body.get("sentAt"):
                try:
                    batch_sent_at = parse_timestamp(body["sentAt"])
                except ValueError as exc:
                    return json_error(f"Invalid sentAt: {exc}.", status=400, errors={"sentAt": [str(exc)]})
            shared_context = body.get("context") if isinstance(body.get("context"), dict) else {}
            if shared_context:
                messages = [
                    dict(m, context={**shared_context, **(m.get("context") or {})})
                    if isinstance(m, dict) and isinstance(m.get("context") or {}, dict) else m
                    for m in messages
                ]
        else:
            messages = [dict(body, type=self.kind)]

        results = segment_messages_ingest(messages=messages, source=source, received_at=received_at,
                                          batch_sent_at=batch_sent_at)
        if source.last_used_at is None or (received_at - source.last_used_at).total_seconds() > 60:
            type(source).objects.filter(pk=source.pk).update(last_used_at=received_at)
        rejected = [r for r in results if r.status == REJECTED]
        for result in rejected:
            logger.warning("segment message rejected (source=%s, index=%d, messageId=%s): %s", source.name,
                           result.index, result.message_id, result.errors)
        if self.kind != "batch":
            result = results[0]
            if result.status == REJECTED:
                fields = ", ".join(result.errors)
                return json_error(f"Invalid {self.kind} call: {fields}.", status=400, errors=result.errors)
            return JsonResponse({"success": True, **result.as_dict()})
        body = {"success": len(rejected) < len(results), "results": [r.as_dict() for r in results]}
        if len(rejected) == len(results):
            body["detail"] = "Every message was rejected; see results[].errors."
            return JsonResponse(body, status=400)
        return JsonResponse(body)
