"""Malformed input on every ingest path: a 4xx naming the field, never a 5xx, and one bad item
never costs a good one (issue #9, point 5). Each test reproduces a failure seen from outside."""

import base64
import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, OperationalError
from django.test import Client

from conftest import event_payload
from events import services
from events.models import Event, ImportJob, WebhookSource
from events.segment import segment_source_create
from events.tests.test_webhooks import signed_headers

pytestmark = pytest.mark.django_db


def post_raw(api, path, raw: bytes | str, content_type="application/json"):
    return api.generic("POST", path, raw, content_type=content_type)


def assert_4xx_naming(response, field, status=400):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert field in body["errors"], body


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.fixture
def write_key(db):
    _, key = segment_source_create(name="website")
    return key


def segment_post(path, body: str, key=None):
    auth = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()} if key else {}
    return Client().post(f"/v1/{path}", data=body, content_type="application/json", **auth)


@pytest.fixture
def source(db):
    return WebhookSource.objects.create(name="crm", source_tag="crm")


def webhook_post(source, body: str):
    return Client().post("/webhooks/events", data=body, content_type="application/json",
                         **signed_headers(source.secret, body))


# --- Deep nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/events", "/api/events/batch"])
def test_deeply_nested_json_is_400_naming_the_body(api, path):
    assert_4xx_naming(post_raw(api, path, deep(5000)), "body")
    assert_4xx_naming(post_raw(api, path, "[" * 100_000 + "]" * 100_000), "body")


def test_deeply_nested_json_on_webhooks_and_segment_is_400_even_unauthenticated(source, write_key):
    assert_4xx_naming(webhook_post(source, deep(5000)), "body")
    assert_4xx_naming(segment_post("track", deep(5000)), "body")  # before the write key is looked at
    assert_4xx_naming(segment_post("batch", "[" * 50_000, key=write_key), "body")


def test_metadata_deeper_than_the_limit_is_400_naming_metadata(api):
    metadata = json.loads(deep(25))
    response = api.post("/api/events", event_payload("deep-1", metadata=metadata), format="json")
    assert_4xx_naming(response, "metadata")
    assert not Event.objects.exists()
    shallow = json.loads(deep(19))
    assert api.post("/api/events", event_payload("deep-2", metadata=shallow), format="json").status_code == 202


# --- Non-finite and huge numbers ------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_are_400_naming_the_field(api, source, write_key, number):
    raw = json.dumps(event_payload("nan-1")).replace('"email"', f'"metadata": {{"x": {{"y": {number}}}}}, "email"')
    assert_4xx_naming(post_raw(api, "/api/events", raw), "metadata")
    body = api.post("/api/events/batch", [event_payload("ok-1")], format="json").json()
    assert body["totals"]["accepted"] == 1
    # the same on the webhook and on Segment, where a bad message does not cost the good one
    response = webhook_post(source, raw)
    assert response.status_code == 400
    assert "metadata" in response.json()["results"][0]["errors"]
    batch = ('{"batch": [{"type": "page", "userId": "u@example.com", "messageId": "s-ok"},'
             f'{{"type": "page", "userId": "u@example.com", "messageId": "s-bad", "properties": {{"n": {number}}}}}]}}')
    response = segment_post("batch", batch, key=write_key)
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected"]
    assert set(Event.objects.values_list("event_id", flat=True)) == {"ok-1", "s-ok"}


def test_a_number_too_long_to_parse_is_400_naming_the_body(api):
    raw = json.dumps(event_payload("big-1")).replace('"email"', '"metadata": {"x": ' + "9" * 5000 + '}, "email"')
    assert_4xx_naming(post_raw(api, "/api/events", raw), "body")


# --- Lone surrogates and NUL ----------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("event_id", "\ud800"),
    ("event_type", "PAGE\udfff"),
    ("email", "a\ud800@example.com"),
    ("metadata", {"k\ud800": 1}),
    ("metadata", {"k": ["x", "\udc00"]}),
    ("event_id", "a\x00b"),
    ("metadata", {"k": "a\x00b"}),
])
def test_lone_surrogates_and_nul_are_400_naming_the_field(api, field, value):
    payload = event_payload("sur-1")
    payload[field] = value
    raw = json.dumps(payload)
    assert_4xx_naming(post_raw(api, "/api/events", raw), field)
    assert not Event.objects.exists()


def test_a_batch_keeps_the_valid_item_next_to_a_lone_surrogate(api):
    raw = json.dumps([event_payload("good-1"), event_payload("\ud800"), event_payload("good-2", metadata={"x": "\udfff"})])
    response = post_raw(api, "/api/events/batch", raw)
    assert response.status_code == 202, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected"]
    assert "event_id" in results[1]["errors"] and "metadata" in results[2]["errors"]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["good-1"]


def test_segment_ids_and_traits_with_lone_surrogates_are_rejected_alone(write_key):
    batch = json.dumps({"batch": [
        {"type": "page", "userId": "u@example.com", "messageId": "s-ok"},
        {"type": "page", "userId": "\ud800", "messageId": "s-2"},
        {"type": "page", "anonymousId": "anon-\udc00", "messageId": "s-3"},
        {"type": "identify", "userId": "u@example.com", "traits": {"firstName": "\ud800"}},
        {"type": "track", "userId": "u@example.com", "event": "Demo\ud800", "messageId": "s-5"},
        {"type": "page", "userId": "u@example.com", "messageId": "s-\ud800"},
    ]})
    response = segment_post("batch", batch, key=write_key)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] + ["rejected"] * 5
    assert all(r["errors"] for r in results[1:])
    assert list(Event.objects.values_list("event_id", flat=True)) == ["s-ok"]


# --- Dates out of range ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z",
                                   "0001-01-01T00:00:00Z"])
def test_timestamps_out_of_range_are_400_naming_timestamp(api, value):
    assert_4xx_naming(api.post("/api/events", event_payload("old-1", timestamp=value), format="json"), "timestamp")


@pytest.mark.parametrize("message, field", [
    ({"sentAt": "9999-12-31T23:59:59Z", "originalTimestamp": "0001-01-01T00:00:00Z"}, "timestamp"),
    ({"sentAt": "0001-01-01T00:00:00+01:00", "timestamp": "9999-12-31T23:59:59-01:00"}, "sentAt"),
    ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
])
def test_segment_clock_skew_arithmetic_never_overflows(write_key, message, field):
    body = json.dumps({"userId": "u@example.com", "messageId": "t-1", **message})
    response = segment_post("page", body, key=write_key)
    assert response.status_code == 400, response.content
    assert response.json()["errors"]


def test_a_batch_sent_at_out_of_range_is_400(write_key):
    body = json.dumps({"sentAt": "9999-12-31T23:59:59Z", "batch": [
        {"type": "page", "userId": "u@example.com", "originalTimestamp": "0001-01-01T00:00:00Z"}]})
    response = segment_post("batch", body, key=write_key)
    assert response.status_code == 400, response.content


# --- Wrong types in Segment messages ---------------------------------------------------------


@pytest.mark.parametrize("value", [["track"], {"a": 1}, 7, None, True])
def test_a_non_string_segment_type_is_rejected_naming_type(write_key, value):
    body = json.dumps({"batch": [{"type": value, "userId": "u@example.com"},
                                 {"type": "page", "userId": "u@example.com", "messageId": "p-1"}]})
    response = segment_post("batch", body, key=write_key)
    assert response.status_code == 200, response.content
    assert "type" in response.json()["results"][0]["errors"]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["p-1"]


# --- Body size ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_json(api, settings):
    big = json.dumps(event_payload("big-1", metadata={"pad": "x" * (21 * 1024 * 1024)}))
    for path in ("/api/events", "/api/events/batch"):
        response = post_raw(api, path, big)
        assert response.status_code == 413, response.content[:300]
        assert "body" in response.json()["errors"]


# --- A row the database refuses is rejected alone ---------------------------------------------


@pytest.fixture(params=[IntegrityError, OperationalError], ids=["IntegrityError", "OperationalError"])
def poisoned_insert(monkeypatch, request):
    """The database refuses any row whose event_id starts with "poison" (as MariaDB's JSON CHECK
    refuses what validation let through): the whole multi-row statement fails. mysqlclient raises
    such a refused value as OperationalError (4025, 1366), not only as IntegrityError/DataError."""
    real = services.dicts_insert
    error = request.param

    def insert(model, rows, **kwargs):
        if any(str(row["event_id"]).startswith("poison") for row in rows):
            raise error(4025, "CONSTRAINT `events_event.metadata` failed for `tg`.`events_event`")
        return real(model, rows, **kwargs)

    monkeypatch.setattr(services, "dicts_insert", insert)


def test_a_row_the_database_refuses_is_rejected_alone_in_a_batch(api, poisoned_insert):
    items = [event_payload(f"ok-{i}") for i in range(10)]
    items[6] = event_payload("poison-1")
    response = api.post("/api/events/batch", items, format="json")
    assert response.status_code == 202, response.content
    results = response.json()["results"]
    assert results[6]["status"] == "rejected" and "metadata" in results[6]["errors"]
    assert Event.objects.count() == 9
    # and a single event the database refuses is a 400, not a 500
    assert_4xx_naming(api.post("/api/events", event_payload("poison-2"), format="json"), "metadata")


def upload(api, content: bytes, name: str, **data):
    return api.post("/api/events/upload", {"file": SimpleUploadedFile(name, content), **data}, format="multipart")


def errors_csv(api, job_id) -> list[dict]:
    response = api.get(f"/api/imports/{job_id}/errors.csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def _rows(n, bad_at, bad):
    rows = []
    for i in range(n):
        row = {"event_id": f"imp-{i}", "event_type": "PAGE_VIEW", "timestamp": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
               "email": f"l{i % 20}@example.com"}
        if i in bad_at:
            row.update(bad)
        rows.append(row)
    return rows


BAD_ROWS = [
    ("nan", '{"x": NaN}', "metadata"),
    ("inf", '{"x": Infinity}', "metadata"),
    ("huge", '{"x": 1e999}', "metadata"),
    ("year1", "0001-01-01T00:00:00+01:00", "timestamp"),
    ("surrogate", "\ud800", "event_id"),
    ("poison", "poison-9", None),
]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
@pytest.mark.parametrize("kind, value, field", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_an_upload_with_one_bad_row_imports_every_other_row(api, django_capture_on_commit_callbacks, poisoned_insert,
                                                           settings, fmt, kind, value, field):
    settings.TARGETGRID_IMPORT_CHUNK = 200
    n, bad_index = 1601, 1400  # (the bad row after the first 64 KB, which the upload checks as a whole)
    rows = _rows(n, set(), {})
    if field == "metadata":
        rows[bad_index]["metadata"] = "@@META@@"
    elif field is None:
        rows[bad_index]["event_id"] = value
    else:
        rows[bad_index][field] = value
    if fmt == "csv":
        if field == "metadata":
            rows[bad_index]["metadata"] = value  # the cell holds the JSON text as is
        out = io.StringIO()
        writer = csv.DictWriter(out, ["event_id", "event_type", "timestamp", "email", "metadata"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = out.getvalue()
        if kind == "surrogate":
            field = "row"  # in a CSV file a lone surrogate can only be bytes that are not UTF-8
    elif fmt == "ndjson":
        text = "\n".join(json.dumps(r) for r in rows).replace('"@@META@@"', value) + "\n"
    else:
        text = json.dumps(rows).replace('"@@META@@"', value)
    content = text.encode("utf-8", "surrogatepass")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, content, f"one-bad.{fmt}")
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get(pk=response.json()["import_id"])
    assert job.status == "completed", job.error
    assert (job.processed, job.accepted, job.rejected) == (n, n - 1, 1)
    assert Event.objects.count() == n - 1
    report = errors_csv(api, job.pk)
    assert len(report) == 1
    expected_row = {"csv": bad_index + 2, "ndjson": bad_index + 1, "json": bad_index + 1}[fmt]
    assert int(report[0]["row"]) == expected_row
    assert report[0]["field"] == (field or "metadata"), report
    assert report[0]["message"]


def test_a_csv_with_cr_only_line_endings_is_refused_at_upload(api):
    content = b"event_id,event_type,timestamp,email\rcr-1,PAGE_VIEW,2026-01-01T00:00:00Z,a@example.com\r"
    assert_4xx_naming(upload(api, content, "mac.csv"), "file")
    assert not ImportJob.objects.exists()


# --- 5xx bodies are JSON; a database outage is a 503 ----------------------------------------


@pytest.mark.parametrize("path", ["/api/events", "/webhooks/events", "/v1/track"])
def test_an_unexpected_error_is_a_json_500_and_a_database_outage_a_json_503(source, write_key, monkeypatch, path,
                                                                            caplog):
    def boom(exc):
        def raiser(**kwargs):
            raise exc
        return raiser

    body = json.dumps(event_payload("x-1"))
    if path == "/webhooks/events":
        send = lambda: webhook_post(source, body)  # noqa: E731
    elif path == "/v1/track":
        send = lambda: segment_post("track", json.dumps({"userId": "u@example.com", "event": "Demo Requested"}),  # noqa: E731
                                    key=write_key)
    else:
        from events.services import api_key_create

        _, key = api_key_create(name="k")
        send = lambda: Client(raise_request_exception=False).post(  # noqa: E731
            path, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    import events.segment
    import events.webhook_apis
    import events.apis
    for module in (events.apis, events.webhook_apis, events.segment):
        monkeypatch.setattr(module, "event_ingest", boom(RuntimeError("kaboom")))
    response = send()
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert "kaboom" not in response.content.decode()
    assert "kaboom" in caplog.text  # logged with its traceback
    for module in (events.apis, events.webhook_apis, events.segment):
        monkeypatch.setattr(module, "event_ingest", boom(OperationalError(2002, "Can't connect to server")))
    response = send()
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert int(response["Retry-After"]) > 0


def test_unknown_paths_under_webhooks_and_v1_are_json_404():
    for path in ("/webhooks/nope", "/v1/nope"):
        response = Client().get(path)
        assert response.status_code == 404
        assert response["Content-Type"].startswith("application/json")


# --- Redis down: rate limiting fails open ---------------------------------------------------


@pytest.fixture
def redis_down(settings):
    """The cache points at a port where nothing listens (as during a Redis outage)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {"default": {"BACKEND": "config.cache.ReusedClientRedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{port}/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    # (pytest-django's settings fixture resets Django's cache handler when CACHES changes)


def test_while_redis_is_down_ingest_fails_open_and_stores_events(api, redis_down, source, write_key, caplog,
                                                                 django_capture_on_commit_callbacks, monkeypatch):
    import events.ratelimit

    events.ratelimit._outage.reset()  # no warning logged "recently"
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post("/api/events", event_payload("r-1"), format="json")
        second = api.post("/api/events/batch", [event_payload("r-2")], format="json")
        body = json.dumps(event_payload("r-3"))
        third = webhook_post(source, body)
        fourth = segment_post("page", json.dumps({"userId": "u@example.com", "messageId": "r-4"}), key=write_key)
    assert [r.status_code for r in (first, second, third, fourth)] == [202, 202, 202, 200], first.content
    assert set(Event.objects.values_list("event_id", flat=True)) == {"r-1", "r-2", "r-3", "r-4"}
    warnings = [r for r in caplog.records if "rate limiting is off" in r.getMessage()]
    assert len(warnings) == 1  # logged, but not once per request


def test_a_chunk_that_fails_is_split_until_the_failing_row_stands_alone(api, django_capture_on_commit_callbacks,
                                                                      monkeypatch):
    # given 5,001 rows in chunks of 2,000 (the default), and a row whose ingest fails outside the
    # event insert (the whole chunk's transaction raises)
    from events import imports

    real = imports.event_ingest

    def ingest(*, items, **kwargs):
        if any(item.get("event_id") == "imp-4321" for item in items):
            raise IntegrityError(1406, "Data too long for column 'email'")
        return real(items=items, **kwargs)

    monkeypatch.setattr(imports, "event_ingest", ingest)
    content = ("\n".join(json.dumps(r) for r in _rows(5001, set(), {})) + "\n").encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, content, "many.ndjson")
    job = ImportJob.objects.get(pk=response.json()["import_id"])
    assert job.status == "completed", job.error
    assert (job.processed, job.accepted, job.rejected) == (5001, 5000, 1)
    assert Event.objects.count() == 5000
    report = errors_csv(api, job.pk)
    assert [(r["row"], r["event_id"], r["field"]) for r in report] == [("4322", "imp-4321", "row")]
    assert "Data too long" in report[0]["message"]


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv"])
def test_rows_too_deep_or_with_numbers_too_long_are_row_errors(api, django_capture_on_commit_callbacks, fmt):
    rows = _rows(6, set(), {})
    placeholders = {1: deep(3000), 3: "9" * 5000, 4: deep(30)}
    for index in placeholders:
        rows[index]["metadata"] = f"@@{index}@@"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, ["event_id", "event_type", "timestamp", "email", "metadata"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = out.getvalue()
        for index, value in placeholders.items():
            text = text.replace(f"@@{index}@@", value.replace('"', '""') if index != 3 else value)
        text = text.replace('{""a""', '"{""a""').replace('}}\n', '}}"\n')
    else:
        text = "\n".join(json.dumps(r) for r in rows) + "\n" if fmt == "ndjson" else json.dumps(rows)
        for index, value in placeholders.items():
            text = text.replace(f'"@@{index}@@"', value)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, text.encode(), f"deep.{fmt}")
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get(pk=response.json()["import_id"])
    assert job.status == "completed", job.error
    assert (job.accepted, job.rejected) == (3, 3)
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["imp-0", "imp-2", "imp-5"]
    assert len({r["row"] for r in errors_csv(api, job.pk)}) == 3


def test_webhook_timestamps_and_source_names_that_cannot_be_handled_are_4xx(source):
    body = json.dumps(event_payload("w-1"))
    headers = signed_headers(source.secret, body)
    headers["HTTP_WEBHOOK_TIMESTAMP"] = "9" * 400
    response = Client().post("/webhooks/events", data=body, content_type="application/json", **headers)
    assert response.status_code == 401 and response["Content-Type"].startswith("application/json")
    response = Client().post("/webhooks/events?source=%00%ED%A0%80", data=body, content_type="application/json",
                             **signed_headers(source.secret, body))
    assert 400 <= response.status_code < 500


@pytest.fixture
def no_metadata_checks(monkeypatch):
    """Validation lets any metadata through, so the real database gets to refuse it (MariaDB's and
    SQLite's JSON checks, the drivers' encoders): the isolation is tested against the real thing."""
    import events.validation

    monkeypatch.setattr(events.validation, "metadata_problem", lambda metadata: None)


def test_rows_the_real_database_refuses_are_rejected_alone(api, no_metadata_checks, django_capture_on_commit_callbacks):
    items = [event_payload("real-ok-1"), event_payload("real-nan", metadata={"x": float("nan")}),
             event_payload("real-ok-2"), event_payload("real-sur", metadata={"x": "\ud800"}), event_payload("real-ok-3")]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_raw(api, "/api/events/batch", json.dumps(items))
    assert response.status_code == 202, response.content
    results = {r["event_id"]: r for r in response.json()["results"]}
    assert [results[f"real-ok-{i}"]["status"] for i in (1, 2, 3)] == ["accepted"] * 3
    assert results["real-nan"]["status"] == "rejected" and results["real-nan"]["errors"]  # MariaDB and SQLite
    # an escaped lone surrogate: SQLite's json_valid takes it, MariaDB's refuses it
    assert results["real-sur"]["status"] == "accepted" or results["real-sur"]["errors"]
    stored = set(Event.objects.values_list("event_id", flat=True))
    assert stored - {"real-sur"} == {"real-ok-1", "real-ok-2", "real-ok-3"}
    assert set(Event.objects.values_list("status", flat=True)) == {"processed"}


def test_an_import_row_the_real_database_refuses_is_reported_alone(api, no_metadata_checks, settings,
                                                                  django_capture_on_commit_callbacks):
    settings.TARGETGRID_IMPORT_CHUNK = 50
    rows = _rows(120, set(), {})
    rows[70]["metadata"] = "@@NAN@@"
    content = ("\n".join(json.dumps(r) for r in rows).replace('"@@NAN@@"', '{"x": NaN}') + "\n").encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, content, "real.ndjson")
    job = ImportJob.objects.get(pk=response.json()["import_id"])
    assert job.status == "completed", job.error
    assert (job.accepted, job.rejected) == (119, 1)
    assert [int(r["row"]) for r in errors_csv(api, job.pk)] == [71]


def test_an_oversized_upload_is_413_naming_file(api, settings):
    settings.TARGETGRID_UPLOAD_MAX_BYTES = 100
    response = upload(api, b"event_id,event_type,timestamp,email\n" + b"x,PAGE_VIEW,2026-01-01T00:00:00Z,a@b.co\n" * 10,
                      "big.csv")
    assert_4xx_naming(response, "file", status=413)
