from rest_framework import serializers

from .models import Event


class EventOutputSerializer(serializers.ModelSerializer):
    lead_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "event_id",
            "lead_id",
            "event_type",
            "timestamp",
            "received_at",
            "status",
            "processed",
            "processed_at",
            "points",
            "score_after",
            "late",
            "metadata",
            "source",
        ]


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
