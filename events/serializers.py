from datetime import timezone

from rest_framework import serializers


def _iso(value):
    """DRF's DateTimeField output (UTC, ISO 8601, ``Z``), without its per-field machinery."""
    if value is None:
        return None
    text = value.astimezone(timezone.utc).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _str(value):
    return None if value is None else str(value)


class EventOutputSerializer(serializers.Serializer):
    """Declared fields (the API's schema), written out by :meth:`to_representation` directly.

    The single-event POST is a hot path: a ModelSerializer introspects the model on every
    instantiation, and even declared fields cost ~0.3 ms per event through DRF's per-field calls
    (about a tenth of that request's own CPU, bench/README.md). The output is the same as the
    fields' (tested in events/tests/test_apis.py).
    """

    id = serializers.UUIDField(read_only=True)
    event_id = serializers.CharField(read_only=True)
    lead_id = serializers.UUIDField(read_only=True)
    event_type = serializers.CharField(read_only=True)
    timestamp = serializers.DateTimeField(read_only=True)
    received_at = serializers.DateTimeField(read_only=True)
    status = serializers.CharField(read_only=True)
    processed = serializers.BooleanField(read_only=True)
    processed_at = serializers.DateTimeField(read_only=True)
    points = serializers.IntegerField(read_only=True)
    score_after = serializers.IntegerField(read_only=True)
    late = serializers.BooleanField(read_only=True)
    metadata = serializers.JSONField(read_only=True)
    source = serializers.CharField(read_only=True)
    error = serializers.CharField(read_only=True)  # why a failed event failed (skipped: why it was dropped)

    def to_representation(self, event):
        return {
            "id": _str(event.id),
            "event_id": event.event_id,
            "lead_id": _str(event.lead_id),
            "event_type": event.event_type,
            "timestamp": _iso(event.timestamp),
            "received_at": _iso(event.received_at),
            "status": event.status,
            "processed": event.processed,
            "processed_at": _iso(event.processed_at),
            "points": event.points,
            "score_after": event.score_after,
            "late": event.late,
            "metadata": event.metadata,
            "source": event.source,
            "error": event.error,
        }


def ingest_results_body(result) -> tuple[dict, int]:
    """The body and status of a multi-event answer: one result per item, every valid item kept.

    202 if any event was accepted, 200 if none was but some were duplicates, 400 if all were rejected.
    """
    body = {
        "totals": result.totals,
        "results": [
            {"index": item.index, "event_id": item.event_id, "status": item.status}
            | ({"errors": item.errors} if item.errors else {})
            for item in result.items
        ],
    }
    totals = result.totals
    if totals["accepted"]:
        return body, 202
    if totals["duplicate"]:
        return body, 200
    body["detail"] = "Every event was rejected; see results[].errors."
    return body, 400
