from rest_framework import serializers


class EventOutputSerializer(serializers.Serializer):
    """Declared fields rather than a ModelSerializer: the single-event POST is a hot path and a
    ModelSerializer introspects the model on every instantiation (~15% of that request's CPU)."""

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
