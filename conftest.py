"""Shared fixtures: an API key client, a staff session client, event factories."""

import itertools
import socket
from datetime import datetime, timedelta, timezone

import pytest
from rest_framework.test import APIClient

_counter = itertools.count()


def free_port() -> int:
    """A port nobody listens on now (for a server a test starts as a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_database_url() -> str:
    """The test database as a DATABASE_URL, for processes a test starts (workers, servers)."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    scheme, default_port = {"mysql": ("mysql", 3306), "postgresql": ("postgres", 5432)}[connection.vendor]
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"{scheme}://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or default_port}/{s['NAME']}"


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


def ensure_default_rules():
    """Transactional tests flush every table, including the rows the data migrations created."""
    from importlib import import_module

    from scoring.models import ScoringRule

    from events.models import SegmentEventMapping

    defaults = import_module("scoring.migrations.0002_default_rules").DEFAULT_RULES
    for event_type, points, description in defaults:
        ScoringRule.objects.get_or_create(event_type=event_type, defaults={"points": points, "description": description})
    publish_draft_if_unpublished()
    ensure_default_stages()
    for event_name, event_type in import_module("events.migrations.0003_default_segment_mappings").DEFAULT_MAPPINGS:
        SegmentEventMapping.objects.get_or_create(event_name=event_name, defaults={"event_type": event_type})


def ensure_default_stages():
    """The stages migration 0009 seeds (Cold < 40 <= Warm < 100 <= MQL < 300 <= SQL), when a flush removed them."""
    from importlib import import_module

    from scoring.models import Stage, StageSettings

    if StageSettings.objects.exists():
        return
    for position, (name, threshold, color) in enumerate(import_module("scoring.migrations.0009_default_stages").DEFAULT):
        Stage.objects.get_or_create(name=name, defaults={"position": position * 10, "min_score": threshold, "color": color})
    StageSettings.objects.get_or_create(pk=1, defaults={"version": 1, "score_thresholds": []})


def publish_draft_if_unpublished():
    """Version 1 = the draft, as the data migration publishes it (flushed by transactional tests)."""
    from scoring.models import RuleSetVersion

    if not RuleSetVersion.objects.exists():
        publish_draft_now()


def publish_draft_now(*, note: str = "test") -> int:
    """Publish the draft inside the current (test) transaction, without a background rescore:
    what ``scoring.rescoring.ruleset_publish`` stores, for tests that edit rules and score at once."""
    from django.utils import timezone

    from scoring.models import RuleSetVersion
    from scoring.rulesets import draft_snapshot, snapshot_diff, version_snapshot

    previous = RuleSetVersion.objects.order_by("-number").first()
    snapshot = draft_snapshot()
    version = RuleSetVersion.objects.create(
        number=(previous.number if previous else 0) + 1, changes=snapshot_diff(version_snapshot(previous), snapshot),
        note=note, published_by="test", published_at=timezone.now(), **snapshot,
    )
    return version.number


@pytest.fixture
def publish():
    """``publish()`` publishes the draft (no background rescore); returns the version number."""
    return publish_draft_now


@pytest.fixture(autouse=True)
def default_rules(request):
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db", "live_server"} & set(
        request.fixturenames
    )
    if not uses_db or request.node.get_closest_marker("no_default_rules"):
        return
    request.getfixturevalue("django_db_setup")
    blocker = request.getfixturevalue("django_db_blocker")
    with blocker.unblock():
        ensure_default_rules()



@pytest.fixture(scope="session", autouse=True)
def _postgresql_test_database_dropped_at_the_end(request):
    """PostgreSQL refuses to drop a database with open sessions, and a thread or a worker process
    of the suite may still hold one when the run ends: the test database would be left behind
    (with a warning) and the next run could not create it. End those sessions just before Django
    drops it (this fixture is set up after django_db_setup, so it is torn down before)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    request.getfixturevalue("django_db_setup")
    yield
    with request.getfixturevalue("django_db_blocker").unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
