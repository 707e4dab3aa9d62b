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
