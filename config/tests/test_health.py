"""GET /health: public, JSON, 503 when a dependency is down."""

import pytest

pytestmark = pytest.mark.django_db


def test_health_is_public_and_ok(anon):
    response = anon.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "queue", "channel_layer", "workers"}
    assert body["checks"]["database"]["pending_events"] == 0


def test_health_is_503_when_the_embedded_worker_is_not_running(anon, settings):
    settings.TARGETGRID_QUEUE = "embedded"
    response = anon.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"]["status"] == "down"


def test_health_is_503_when_the_database_fails(anon, monkeypatch):
    from config import health

    def broken():
        raise RuntimeError("connection refused")

    monkeypatch.setattr(health, "_database", broken)
    response = anon.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "status": "down",
        "error": "RuntimeError: connection refused",
        "latency_ms": response.json()["checks"]["database"]["latency_ms"],
    }


def stored_pending_event(*, age_seconds):
    """A pending event received ``age_seconds`` ago (stored, never scored)."""
    from datetime import timedelta

    from django.utils import timezone

    from events.models import Event
    from leads.models import Lead

    lead = Lead.objects.create(email=f"ready{age_seconds}@example.com")
    event = Event.objects.create(
        event_id=f"ready-{age_seconds}", lead=lead, event_type="PAGE_VIEW", timestamp=timezone.now()
    )
    Event.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(seconds=age_seconds))
    return event


def test_ready_is_ok_while_scoring_keeps_up(anon, settings):
    settings.TARGETGRID_READY_MAX_PENDING_SECONDS = 60
    stored_pending_event(age_seconds=5)  # a backlog younger than the threshold is fine
    response = anon.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert set(body["checks"]) == {"database", "queue", "channel_layer", "workers", "scoring"}
    scoring = body["checks"]["scoring"]
    assert scoring["status"] == "ok" and 5 <= scoring["oldest_pending_seconds"] < 60
    assert scoring["max_pending_seconds"] == 60


def test_ready_is_503_when_the_oldest_pending_event_is_too_old_and_health_keeps_its_meaning(anon, settings):
    settings.TARGETGRID_READY_MAX_PENDING_SECONDS = 60
    stored_pending_event(age_seconds=300)
    response = anon.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    scoring = body["checks"]["scoring"]
    assert scoring["status"] == "down" and scoring["oldest_pending_seconds"] >= 300
    assert "scoring is stalled" in scoring["error"]
    # /health still reports the dependencies only: they are up, so it is 200 (with the backlog count)
    health = anon.get("/health")
    assert health.status_code == 200 and health.json()["checks"]["database"]["pending_events"] == 1


def test_ready_counts_failed_events_without_failing(anon):
    from events.models import Event, EventStatus

    event = stored_pending_event(age_seconds=600)
    Event.objects.filter(pk=event.pk).update(status=EventStatus.FAILED, error="RuntimeError: boom")
    response = anon.get("/health/ready/")
    assert response.status_code == 200
    assert response.json()["checks"]["scoring"]["failed_events"] == 1
