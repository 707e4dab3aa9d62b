"""Shared fixtures: an API key client, a staff session client, event factories."""

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from rest_framework.test import APIClient

_counter = itertools.count()


@pytest.fixture
def api_key(db):
    from events.services import api_key_create

    _, raw_key = api_key_create(name=f"test-{next(_counter)}")
    return raw_key


@pytest.fixture
def api(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def staff_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")


T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def event_payload(event_id, *, event_type="PAGE_VIEW", minutes=0, email="ann@example.com", **extra):
    body = {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "email": email,
    }
    body.update(extra)
    return body


@pytest.fixture
def make_event():
    return event_payload
