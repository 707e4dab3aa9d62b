"""Fuzzing every ingest path with malformed input (issue #9, acceptance 3).

Thousands of bodies — deep nesting, lone surrogates, NUL, NaN/Infinity/1e999/huge integers, dates
out of range, wrong types at every field, broken JSON/CSV/NDJSON, mixed good and bad batches and
files — through Django's test client against ``/api/events``, ``/api/events/batch``,
``/webhooks/events``, ``/v1/*``, ``/api/events/upload`` (CSV, JSON, NDJSON) and
``manage.py import_events``. Asserted for every answer: no 5xx; JSON; a 4xx names the field (its
``errors``, or each rejected item's); the good items of a mixed batch and every good row of a file
are stored and scored (inline queue); each bad row of a file is in errors.csv with its reason.

Seeded (``FUZZ_SEED``, default 9) and bounded: the same bodies on every run.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import os
import random
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError
from django.test import Client
from rest_framework.test import APIClient

from events import services
from events.models import Event, ImportJob, ImportRowError, WebhookSource
from events.segment import segment_source_create
from events.services import api_key_create
from events.webhooks import secret_key_bytes, signature_compute

pytestmark = pytest.mark.django_db
SEED = int(os.environ.get("FUZZ_SEED", "9"))
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FIELDS = ["event_id", "event_type", "timestamp", "lead_id", "email", "metadata"]


# --- Values -----------------------------------------------------------------------------------
# Raw JSON text that json.dumps cannot produce is carried as a placeholder string and spliced in.

RAW = {
    "@@1e999@@": "1e999",
    "@@-1e999@@": "-1e999",
    "@@longint@@": "9" * 5000,
    "@@deep3000@@": '{"a":' * 3000 + "1" + "}" * 3000,
    "@@deeplist@@": "[" * 2000 + "]" * 2000,
    "@@deep70@@": "[" * 70 + "]" * 70,
}


def nested(levels: int):
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def splice(text: str) -> str:
    for placeholder, raw in RAW.items():
        text = text.replace(f'"{placeholder}"', raw)
    return text


def dumps(value) -> str:
    return splice(json.dumps(value))  # (NaN/Infinity are written as NaN/Infinity by default)


NASTY_STRINGS = ["\ud800", "a\udfffb", "\x00", "x\x00y", "", " ", "x" * 300, "ünïcødé", "😀" * 70,
                 "'; DROP TABLE events_event; --", "=1+2", "\u2028", "\\", '"', "nan", "Infinity"]
NASTY_NUMBERS = [float("nan"), float("inf"), float("-inf"), "@@1e999@@", "@@-1e999@@", "@@longint@@", 0, -1,
                 2**64, 1.5e308, -0.0, 10**300]
NASTY_STRUCTURES = [[], {}, [1, 2], {"a": None}, nested(25), nested(40), "@@deep3000@@", "@@deeplist@@",
                    "@@deep70@@", [float("nan")], {"k\ud800": 1}, {"k": "\x00"}, {"": {"": [None]}}]
NASTY_DATES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
               "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
               "2026-01-01T00:00:00", "2026-01-01T00:00:00+99:00", "yesterday", "2026-01-01T25:00:00Z",
               "+275760-09-13T00:00:00Z", "2026-01-01T00:00:00.9999999999Z", "1e10"]
NASTY = NASTY_STRINGS + NASTY_NUMBERS + NASTY_STRUCTURES + NASTY_DATES + [None, True, False]

# Values that make a field invalid for sure (for files, where each bad row must be reported).
SURELY_BAD = {
    "event_id": ["\ud800", "a\x00b", "x" * 300, [], {}, True, 1.5, float("nan"), "@@deep70@@"],
    "event_type": ["\ud800", "NOT_A_TYPE", 5, [], {"a": 1}, "PAGE\x00VIEW"],
    "timestamp": [d for d in NASTY_DATES if "9999999999Z" not in d] + [5, [], float("inf"), "@@1e999@@"],
    "email": ["not-an-email", "a\ud800@example.com", 5, [], "x" * 300 + "@example.com", "a@\x00.com"],
    "metadata": [float("nan"), float("inf"), float("-inf"), "@@1e999@@", "@@-1e999@@", "@@longint@@",
                 nested(25), "@@deep3000@@", [1], "str", 7, {"k\ud800": 1}, {"x": "\x00"},
                 {"x": [float("nan")]}, {"pad": "y" * 40_000}],
}


# Inside a JSON body these make the whole body unparseable (too deep, a number too long): a batch
# holding one is refused as a whole (400 naming "body"), so mixed-batch tests leave them out.
BODY_KILLERS = {"@@deep3000@@", "@@deeplist@@", "@@longint@@", "@@deep70@@"}


def in_body(values):
    return [v for v in values if not (isinstance(v, str) and v in BODY_KILLERS)]


def ts(i: int) -> str:
    return (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")


def good_event(tag: str, i: int) -> dict:
    return {"event_id": f"good-{tag}-{i}", "event_type": "PAGE_VIEW", "timestamp": ts(i),
            "email": f"lead{i % 7}@example.com", "metadata": {"i": i, "path": "/x,y\"z"}}


def mutate(rng: random.Random, event: dict) -> dict:
    """One to three fields (or extra/missing ones) set to nasty values."""
    event = dict(event)
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        name = rng.choice(FIELDS)
        if roll < 0.15:
            event.pop(name, None)
        elif roll < 0.25:
            event[rng.choice(NASTY_STRINGS) or "k"] = rng.choice(NASTY)
        elif roll < 0.45 and isinstance(event.get("metadata"), dict):
            event["metadata"] = {**event["metadata"], rng.choice(["a", "b", "\ud800", ""]): rng.choice(NASTY)}
        else:
            event[name] = rng.choice(NASTY)
    return event


def surely_bad(rng: random.Random, event: dict, *, csv_safe: bool = False, body_safe: bool = False) -> dict:
    event = dict(event)
    name = rng.choice(list(SURELY_BAD))
    choices = in_body(SURELY_BAD[name]) if body_safe else SURELY_BAD[name]
    if csv_safe:  # a CSV cell holds text: only what text can say (metadata is JSON text in its cell)
        choices = [v for v in choices if isinstance(v, str) and "\ud800" not in v and "\udfff" not in v
                   and "\x00" not in v and not v.startswith("@@") and v.strip()] if name != "metadata" else choices
        if not choices:
            name, choices = "timestamp", NASTY_DATES
    if name == "email":
        event.pop("lead_id", None)
    event[name] = rng.choice(choices)
    return event


def garbage_bodies(rng: random.Random, n: int) -> list[bytes]:
    """Whole bodies that are not one well-formed event."""
    fixed = [b"", b" ", b"null", b"[]", b"{}", b"[[]]", b'"x"', b"1e999", b"NaN", b"\xff\xfe", b"\xed\xa0\x80",
             b'{"event_id": "\xed\xa0\x80"}', b"{", b"[" * 100_000, b'{"a":' * 5000, b"9" * 5000,
             ("[" * 5000 + "]" * 5000).encode(), b"\x00" * 10, b'{"event_id": 1, "event_id": 2}',
             b'{"batch": ' + b"[" * 3000, json.dumps({"batch": "x"}).encode(), b'{"a": "\\ud800"}',
             b'{"a": "\\u0000"}', b"\x1f\x8b\x08\x00garbage"]
    bodies = list(fixed)
    while len(bodies) < n:
        base = dumps(mutate(rng, good_event("g", rng.randint(0, 999)))).encode("utf-8", "surrogatepass")
        cut = rng.randint(0, max(0, len(base) - 1))
        kind = rng.random()
        if kind < 0.4:
            bodies.append(base[:cut])
        elif kind < 0.7:
            bodies.append(base[:cut] + bytes([rng.randint(0, 255)]) + base[cut + 1:])
        else:
            bodies.append(base[:cut] + rng.choice([b"[", b"{", b"]", b"}", b'"', b"\\", b",", b":"]) * rng.randint(1, 3000)
                          + base[cut:])
    return bodies


# --- Assertions -------------------------------------------------------------------------------


def check(response, what=""):
    """No 5xx; a JSON body; a 4xx names a field; every rejected item names its field."""
    assert response.status_code < 500, (what, response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), (what, response.status_code, response.content[:300])
    body = json.loads(response.content)
    results = body.get("results") if isinstance(body, dict) else None
    if isinstance(results, list):
        for item in results:
            if item.get("status") == "rejected":
                assert item.get("errors") and all(isinstance(v, list) and v for v in item["errors"].values()), (what, item)
    if 400 <= response.status_code < 500:
        assert isinstance(body, dict) and isinstance(body.get("detail"), str), (what, body)
        named = body.get("errors") or (isinstance(results, list) and any(r.get("errors") for r in results))
        assert named, (what, response.status_code, body)
    return body


def assert_stored_and_scored(event_ids):
    event_ids = set(event_ids)
    stored = dict(Event.objects.filter(event_id__in=event_ids).values_list("event_id", "status"))
    assert set(stored) == event_ids, sorted(event_ids - set(stored))[:10]
    assert set(stored.values()) <= {"processed"}, {k: v for k, v in stored.items() if v != "processed"}


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATELIMIT_ENABLE = False


@pytest.fixture
def api(db):
    _, raw_key = api_key_create(name="fuzz")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def webhook(db):
    source = WebhookSource.objects.create(name="fuzz", source_tag="fuzz")
    key = secret_key_bytes(source.secret)
    client = Client()

    def send(body: bytes, *, gzipped=False, **headers):
        msg_id, stamp = f"msg-{time.monotonic_ns()}", str(int(time.time()))
        signature = base64.b64encode(signature_compute(key=key, msg_id=msg_id, timestamp=stamp, body=body)).decode()
        if gzipped:
            body, headers["HTTP_CONTENT_ENCODING"] = gzip.compress(body), "gzip"
        return client.post("/webhooks/events", data=body, content_type="application/json", HTTP_WEBHOOK_ID=msg_id,
                           HTTP_WEBHOOK_TIMESTAMP=stamp, HTTP_WEBHOOK_SIGNATURE=f"v1,{signature}", **headers)

    return send


@pytest.fixture
def segment(db):
    _, key = segment_source_create(name="fuzz")
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    client = Client()

    def send(kind: str, body: bytes, *, authenticated=True, **headers):
        extra = {"HTTP_AUTHORIZATION": auth} if authenticated else {}
        return client.post(f"/v1/{kind}", data=body, content_type="application/json", **extra, **headers)

    return send


@pytest.fixture
def poisoned_insert(monkeypatch):
    """The database refuses rows whose event_id starts with "poison" (as MariaDB's JSON CHECK does
    for what validation might let through): the whole multi-row statement fails."""
    real = services.dicts_insert

    def insert(model, rows, **kwargs):
        if any(str(row.get("event_id", "")).startswith("poison") for row in rows):
            raise IntegrityError(4025, "CONSTRAINT `events_event.metadata` failed")
        return real(model, rows, **kwargs)

    monkeypatch.setattr(services, "dicts_insert", insert)


# --- JSON endpoints -----------------------------------------------------------------------------


def test_fuzz_single_events_and_garbage_bodies(api, webhook, segment, django_capture_on_commit_callbacks):
    rng = random.Random(SEED)
    sent = 0
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(700):
            body = dumps(mutate(rng, good_event("s", i))).encode("utf-8", "surrogatepass")
            target = i % 3
            if target == 0:
                check(api.generic("POST", "/api/events", body, content_type="application/json"), body[:200])
            elif target == 1:
                check(webhook(body), body[:200])
            else:
                check(api.generic("POST", "/api/events/batch", b"[" + body + b"]", content_type="application/json"),
                      body[:200])
            sent += 1
        for body in garbage_bodies(rng, 160):
            check(api.generic("POST", "/api/events", body, content_type="application/json"), body[:100])
            check(api.generic("POST", "/api/events/batch", body, content_type="application/json"), body[:100])
            check(webhook(body), body[:100])
            check(webhook(body, gzipped=True), body[:100])
            check(segment("batch", gzip.compress(body), HTTP_CONTENT_ENCODING="gzip"), body[:100])
            check(segment("batch", body), body[:100])
            check(segment("track", body, authenticated=False), body[:100])
            sent += 7
        # wrong content types and encodings
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                             "application/json; charset=latin-1", ""):
            check(api.generic("POST", "/api/events", b'{"a": 1}', content_type=content_type), content_type)
            sent += 1
    assert sent > 1800


def test_fuzz_mixed_batches_keep_every_good_item(api, webhook, django_capture_on_commit_callbacks, poisoned_insert):
    rng = random.Random(SEED + 1)
    good_ids = []
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(120):
            items, goods = [], []
            for i in range(rng.randint(2, 12)):
                if rng.random() < 0.5:
                    event = good_event(f"b{n}", i)
                    goods.append(event["event_id"])
                elif rng.random() < 0.1:
                    event = {**good_event(f"b{n}", i), "event_id": f"poison-{n}-{i}"}
                else:
                    event = (surely_bad(rng, good_event(f"bad{n}", i), body_safe=True) if rng.random() < 0.5
                             else rng.choice(in_body(NASTY)))
                items.append(event)
            body = dumps(items).encode("utf-8", "surrogatepass")
            if n % 2 == 0:
                response = api.generic("POST", "/api/events/batch", body, content_type="application/json")
            else:
                response = webhook(body)
            data = check(response, body[:300])
            statuses = {r["event_id"]: r["status"] for r in data["results"]}
            assert all(statuses.get(event_id) == "accepted" for event_id in goods), (goods, data)
            assert all(status == "rejected" for event_id, status in statuses.items()
                       if event_id and event_id.startswith("poison")), data
            good_ids += goods
    assert len(good_ids) > 300
    assert_stored_and_scored(good_ids)
    assert not Event.objects.filter(event_id__startswith="poison").exists()


SEGMENT_KINDS = ["track", "identify", "page", "screen", "group", "alias"]
SEGMENT_FIELDS = ["type", "userId", "anonymousId", "messageId", "event", "properties", "traits", "context",
                  "timestamp", "originalTimestamp", "sentAt", "receivedAt", "previousId", "name", "category",
                  "groupId", "writeKey"]


def good_message(tag: str, i: int, kind: str = "page") -> dict:
    message = {"type": kind, "userId": f"seg{i % 5}@example.com", "messageId": f"good-{tag}-{i}",
               "timestamp": ts(i), "properties": {"i": i}}
    if kind == "track":
        message["event"] = "Demo Requested"
    return message


def mutate_message(rng: random.Random, message: dict) -> dict:
    message = dict(message)
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(SEGMENT_FIELDS)
        roll = rng.random()
        if roll < 0.15:
            message.pop(name, None)
        elif roll < 0.3:
            message[name] = {"email": rng.choice(NASTY), "page": {"url": rng.choice(NASTY)},
                             "firstName": rng.choice(NASTY)}
        else:
            message[name] = rng.choice(NASTY)
    return message


def test_fuzz_segment_messages_and_mixed_batches(segment, django_capture_on_commit_callbacks):
    rng = random.Random(SEED + 2)
    good_ids = []
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(500):
            kind = SEGMENT_KINDS[i % len(SEGMENT_KINDS)]
            message = mutate_message(rng, good_message("one", i, kind))
            message.pop("type", None) if rng.random() < 0.5 else None
            body = dumps(message).encode("utf-8", "surrogatepass")
            check(segment(kind, body), (kind, body[:300]))
        for n in range(80):
            batch, goods = [], []
            for i in range(rng.randint(2, 10)):
                if rng.random() < 0.5:
                    message = good_message(f"sb{n}", i, rng.choice(["page", "track", "screen"]))
                    goods.append(message["messageId"])
                else:
                    message = mutate_message(rng, good_message(f"sbad{n}", i, rng.choice(SEGMENT_KINDS)))
                    message["messageId"] = f"bad-{n}-{i}" if rng.random() < 0.8 else rng.choice(NASTY)
                batch.append(message)
            envelope = {"batch": batch}
            if rng.random() < 0.2:
                envelope[rng.choice(["sentAt", "context", "writeKey"])] = rng.choice(NASTY)
            body = dumps(envelope).encode("utf-8", "surrogatepass")
            data = check(segment("batch", body), body[:300])
            if goods and "results" in data and not any(k in envelope for k in ("sentAt", "context", "writeKey")):
                statuses = {r["messageId"]: r["status"] for r in data["results"]}
                assert all(statuses.get(message_id) == "accepted" for message_id in goods), data
                good_ids += goods
    assert len(good_ids) > 100
    assert_stored_and_scored(good_ids)


def test_fuzz_oversized_bodies_are_413_json(api, webhook, settings):
    settings.TARGETGRID_MAX_BODY_BYTES = 10_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = json.dumps([good_event("big", i) for i in range(200)]).encode()
    for response in (api.generic("POST", "/api/events", big, content_type="application/json"),
                     api.generic("POST", "/api/events/batch", big, content_type="application/json"),
                     webhook(big)):
        assert response.status_code == 413
        assert "body" in check(response)["errors"]
    assert not Event.objects.exists()


# --- Files --------------------------------------------------------------------------------------


def make_file(rng: random.Random, fmt: str, tag: str, *, rows: int, bad: int):
    """A file of ``rows`` rows, ``bad`` of them surely invalid; returns (bytes, good ids, bad row numbers)."""
    bad_at = set(rng.sample(range(rows), bad))
    events, good_ids, bad_rows = [], [], set()
    for i in range(rows):
        event = good_event(tag, i)
        if i in bad_at:
            if rng.random() < 0.1:
                event["event_id"] = f"poison-{tag}-{i}"
            else:
                event = surely_bad(rng, event, csv_safe=fmt == "csv")
                if fmt != "csv" and rng.random() < 0.1:
                    event = rng.choice([[1], "row", 5, None, "@@deep3000@@", "@@longint@@"])
            bad_rows.add(i)
        else:
            good_ids.append(event["event_id"])
        events.append(event)
    if fmt == "json":
        text = dumps(events)
        numbers = {i + 1 for i in bad_rows}
    elif fmt == "ndjson":
        lines = [(dumps(e), i) for i, e in enumerate(events)]
        if rng.random() < 0.5:
            lines.insert(rng.randint(0, len(lines)), ("", None))  # a blank line is skipped, not an error
        text = "\n".join(line for line, _ in lines) + "\n"
        numbers = {number for number, (_, i) in enumerate(lines, start=1) if i in bad_rows}
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"]))
        writer.writerow(["event_id", "event_type", "timestamp", "email", "metadata"])
        for event in events:
            metadata = event.get("metadata")
            cell = metadata if isinstance(metadata, str) and not metadata.startswith("@@") else dumps(metadata)
            writer.writerow([json.dumps(v) if isinstance(v, (list, dict, bool, int, float)) or v is None else v
                             for v in (event.get("event_id"), event.get("event_type"), event.get("timestamp"),
                                       event.get("email"))] + [cell])
        text = out.getvalue()
        numbers = {i + 2 for i in bad_rows}
    return text.encode("utf-8", "surrogatepass"), good_ids, numbers


def upload(api, content: bytes, name: str):
    return api.post("/api/events/upload", {"file": SimpleUploadedFile(name, content)}, format="multipart")


def report_rows(api, job_id) -> dict[int, list[dict]]:
    response = api.get(f"/api/imports/{job_id}/errors.csv")
    assert response.status_code == 200
    rows: dict[int, list[dict]] = {}
    for row in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())):
        rows.setdefault(int(row["row"]), []).append(row)
    return rows


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_fuzz_files_with_bad_rows_import_every_good_row(api, settings, django_capture_on_commit_callbacks,
                                                       poisoned_insert, tmp_path, fmt):
    settings.TARGETGRID_IMPORT_CHUNK = 40
    rng = random.Random(f"{SEED}-{fmt}")
    for n in range(5):
        content, good_ids, bad_numbers = make_file(rng, fmt, f"{fmt}{n}", rows=rng.randint(60, 200),
                                                   bad=rng.randint(1, 30))
        if n % 2 == 0:
            with django_capture_on_commit_callbacks(execute=True):
                response = upload(api, content, f"fuzz-{n}.{fmt}")
            check(response, fmt)
            assert response.status_code == 202, response.content
            job = ImportJob.objects.get(pk=response.json()["import_id"])
        else:  # the CLI: the same path
            path = tmp_path / f"fuzz-{n}.{fmt}"
            path.write_bytes(content)
            with django_capture_on_commit_callbacks(execute=True):
                with pytest.raises(CommandError) as raised:  # rows were rejected: exit code 1
                    call_command("import_events", str(path), stdout=io.StringIO(), stderr=io.StringIO())
            assert raised.value.returncode == 1, raised.value
            job = ImportJob.objects.latest("pk")
        assert job.status == "completed", job.error
        assert job.rejected == len(bad_numbers) and job.accepted == len(good_ids)
        assert_stored_and_scored(good_ids)
        report = report_rows(api, job.pk)
        assert set(report) == bad_numbers
        assert all(r["field"] and r["message"] for rows in report.values() for r in rows)


BROKEN_FILES = [
    ("cr.csv", b"event_id,event_type,timestamp,email\rx,PAGE_VIEW,2026-01-01T00:00:00Z,a@example.com\r"),
    ("cr.ndjson", b'{"event_id": "a"}\r{"event_id": "b"}\r'),
    ("bin.csv", b"event_id,event_type\x00,timestamp,email\n"),
    ("latin1.csv", "event_id,event_type,timestamp,email\nx,PAGE_VIEW,2026-01-01T00:00:00Z,é@example.com\n".encode("latin-1")),
    ("empty.csv", b""),
    ("header.csv", b"event_id,event_type,timestamp\n"),
    ("unknown.csv", b"event_id,event_type,timestamp,email,color\n"),
    ("repeat.csv", b"event_id,event_id,event_type,timestamp,email\n"),
    ("quote.csv", b'event_id,event_type,timestamp,email\n"x,PAGE_VIEW,2026-01-01T00:00:00Z,a@example.com\n'),
    ("cols.csv", b"event_id,event_type,timestamp,email\nx,PAGE_VIEW\n,,,,,,\n"),
    ("notarray.json", b'{"event_id": "x"}'),
    ("open.json", b'[{"event_id": "x", "event_type": "PAGE_VIEW"'),
    ("trailing.json", b'[] []'),
    ("deep.json", b"[" + b"[" * 5000 + b"]" * 5000 + b"]"),
    ("deepobj.json", b'[' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b', {"event_id": "x"}]'),
    ("garbage.ndjson", b"{\n}\n{{{\n" + b"[" * 5000 + b"\n" + b"9" * 5000 + b"\n"),
    ("bigline.ndjson", b'{"event_id": "' + b"x" * (1024 * 1024 + 10) + b'"}\n{"event_id": "y"}\n'),
    ("wrong.json", b"event_id,event_type,timestamp,email\n"),
    ("bom.csv", b"\xef\xbb\xbfevent_id,event_type,timestamp,email\nb-1,PAGE_VIEW,2026-01-01T00:00:00Z,a@example.com\n"),
]


@pytest.mark.parametrize("name, content", BROKEN_FILES, ids=[name for name, _ in BROKEN_FILES])
def test_fuzz_broken_files_are_refused_or_fail_the_job_with_a_reason(api, django_capture_on_commit_callbacks,
                                                                    name, content):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, content, name)
    check(response, name)
    if response.status_code == 400:
        assert "file" in response.json()["errors"] or "format" in response.json()["errors"]
        return
    assert response.status_code == 202
    job = ImportJob.objects.get(pk=response.json()["import_id"])
    assert job.status in ("completed", "failed")
    assert job.status == "completed" or (job.error and "internal error" not in job.error), job.error
    errors = ImportRowError.objects.filter(job=job)
    assert job.rejected == len({e.row for e in errors}) or job.status == "failed"
