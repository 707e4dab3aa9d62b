"""File uploads and imports: streaming CSV/JSON/NDJSON through event_ingest, exact counters,
the error report, resumption after a crash, the CLI and exports."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from events import imports
from events.exports import csv_cell
from events.imports import import_job_create, import_job_run
from events.models import Event, ImportJob, ImportRowError
from realtime.groups import import_group

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ts(i: int) -> str:
    return (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")


def csv_file(rows: int, *, bad_every: int = 0, leads: int = 50) -> tuple[bytes, set[int]]:
    """A CSV with ``rows`` events; every ``bad_every``-th row is bad in one of four ways.

    Returns the content and the file line numbers of the bad rows (header = line 1).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["event_id", "event_type", "timestamp", "email", "metadata"])
    bad = set()
    for i in range(rows):
        row = [f"ev-{i}", "PAGE_VIEW", ts(i), f"lead{i % leads}@example.com", json.dumps({"i": i, "url": "/x,y"})]
        if bad_every and i % bad_every == bad_every - 1:
            kind = (i // bad_every) % 4
            if kind == 0:
                row[1] = "NOT_A_TYPE"
            elif kind == 1:
                row[2] = "yesterday"
            elif kind == 2:
                row[3] = "not-an-email"
            else:
                row[4] = "{broken json"
            bad.add(i + 2)
        writer.writerow(row)
    return out.getvalue().encode(), bad


def upload(api, content: bytes, name: str, **data):
    return api.post("/api/events/upload", {"file": SimpleUploadedFile(name, content), **data}, format="multipart")


def errors_csv(api, job_id) -> list[dict]:
    response = api.get(f"/api/imports/{job_id}/errors.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_a_large_csv_upload_imports_with_exact_counters_and_an_error_report(api, django_capture_on_commit_callbacks,
                                                                           settings):
    # given 20,000 rows with a bad row every 97 rows, and a small chunk size so it takes many chunks
    settings.TARGETGRID_IMPORT_CHUNK = 1500
    content, bad_lines = csv_file(20_000, bad_every=97)
    # when it is uploaded
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, content, "events.csv")
    # then the API answers 202 with a job, and the job completed with exact counters
    assert response.status_code == 202, response.json()
    job_id = response.json()["import_id"]
    assert response.json()["websocket"] == f"/ws/imports/{job_id}/"
    job = api.get(f"/api/imports/{job_id}").json()
    assert job["status"] == "completed"
    assert job["processed"] == 20_000
    assert job["rejected"] == len(bad_lines) == 206
    assert job["accepted"] == 20_000 - 206
    assert job["duplicates"] == 0
    assert job["percent"] == 100.0 and job["total_estimate"] == 20_000
    assert Event.objects.count() == 20_000 - 206
    assert Event.objects.filter(status="processed").count() == 20_000 - 206
    # and the error report names each bad row by its line number, with the field at fault
    report = errors_csv(api, job_id)
    assert {int(r["row"]) for r in report} == bad_lines
    by_row = {int(r["row"]): r for r in report}
    assert by_row[98]["field"] == "event_type" and by_row[98]["event_id"] == "ev-96"
    assert by_row[195]["field"] == "timestamp"
    assert by_row[292]["field"] == "email"
    assert by_row[389]["field"] == "metadata"
    # and the stored metadata came from the JSON column
    assert Event.objects.get(event_id="ev-0").metadata == {"i": 0, "url": "/x,y"}


def test_reimporting_the_same_file_counts_duplicates(api, django_capture_on_commit_callbacks):
    content, _ = csv_file(300)
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(api, content, "a.csv").json()["import_id"]
        second = upload(api, content, "a.csv").json()["import_id"]
    assert ImportJob.objects.get(pk=first).accepted == 300
    job = ImportJob.objects.get(pk=second)
    assert (job.accepted, job.duplicates, job.rejected) == (0, 300, 0)
    assert Event.objects.count() == 300


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_and_ndjson_uploads(api, django_capture_on_commit_callbacks, fmt):
    items = [{"event_id": f"j-{i}", "event_type": "EMAIL_OPEN", "timestamp": ts(i), "email": "j@example.com",
              "metadata": {"n": i}} for i in range(10)]
    items[3]["event_type"] = 7
    items.insert(5, "not an object")
    if fmt == "json":
        content = json.dumps(items, indent=2).encode()
    else:
        lines = [json.dumps(item) for item in items]
        lines.insert(2, "")  # blank lines are skipped
        lines.insert(8, "{not json")
        content = ("\n".join(lines) + "\n").encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, content, f"events.{fmt}")
    assert response.status_code == 202, response.json()
    job = ImportJob.objects.get(pk=response.json()["import_id"])
    assert job.format == fmt and job.status == "completed", job.error
    expected_rejected = 3 if fmt == "ndjson" else 2
    assert (job.accepted, job.rejected) == (9, expected_rejected)
    assert Event.objects.get(event_id="j-9").metadata == {"n": 9}
    rows = sorted((e.row, e.field) for e in ImportRowError.objects.filter(job=job))
    if fmt == "json":
        assert rows == [(4, "event_type"), (6, "row")]  # positions in the array
    else:
        assert rows == [(5, "event_type"), (7, "row"), (9, "row")]  # line numbers in the file


@pytest.mark.parametrize(
    "name, content, data, field",
    [
        ("a.csv", b'[{"event_id": "x"}]', {}, "file"),  # claims CSV, is JSON
        ("a.json", b"event_id,event_type,timestamp,email\n", {}, "file"),  # claims JSON, is CSV
        ("a.csv", b"event_id,kind,timestamp,email\n", {}, "file"),  # unknown column
        ("a.csv", b"event_id,timestamp,email\n", {}, "file"),  # missing column
        ("a.csv", b"event_id,event_type,timestamp\n", {}, "file"),  # no lead_id or email
        ("a.csv", b"", {}, "file"),  # empty
        ("a.bin", b"\x00\x01\x02", {}, "file"),  # binary
        ("a.txt", b"event_id,event_type,timestamp,email\n", {"format": "xml"}, "format"),
        ("a.csv", b"event_id,event_type,timestamp,email\n", {"source": "x" * 40}, "source"),
    ],
)
def test_bad_uploads_are_400_naming_the_field(api, name, content, data, field):
    response = upload(api, content, name, **data)
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert ImportJob.objects.count() == 0


def test_upload_without_a_file_and_oversized_uploads(api, settings):
    response = api.post("/api/events/upload", {"format": "csv"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["errors"]
    settings.TARGETGRID_UPLOAD_MAX_BYTES = 1000
    content, _ = csv_file(100)
    response = upload(api, content, "big.csv")
    assert response.status_code == 413
    assert "at most 1000 bytes" in response.json()["detail"]
    assert ImportJob.objects.count() == 0


def test_upload_needs_authentication(anon):
    content, _ = csv_file(3)
    assert upload(anon, content, "a.csv").status_code in (401, 403)


def test_a_file_that_breaks_mid_array_fails_the_job_but_keeps_what_came_before(api, django_capture_on_commit_callbacks,
                                                                              settings):
    settings.TARGETGRID_IMPORT_CHUNK = 2
    good = [{"event_id": f"b-{i}", "event_type": "PAGE_VIEW", "timestamp": ts(i), "email": "b@example.com"}
            for i in range(4)]
    content = (json.dumps(good)[:-1] + ', {"event_id": "b-9", "event_type": ').encode()
    with django_capture_on_commit_callbacks(execute=True):
        job_id = upload(api, content, "broken.json").json()["import_id"]
    job = ImportJob.objects.get(pk=job_id)
    assert job.status == "failed"
    assert "JSON" in job.error
    assert (job.processed, job.accepted) == (4, 4)


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_a_crashed_import_resumes_from_the_last_committed_chunk(tmp_path, settings, monkeypatch, fmt):
    # given a file of 1,000 rows (some bad) and an ingest that crashes on the 4th chunk
    settings.TARGETGRID_IMPORT_CHUNK = 100
    content, bad = csv_file(1000, bad_every=50)
    if fmt != "csv":
        rows = list(csv.DictReader(io.StringIO(content.decode())))
        for row in rows:
            try:
                row["metadata"] = json.loads(row["metadata"])
            except json.JSONDecodeError:
                pass  # stays a string: rejected by validation instead
        content = (json.dumps(rows) if fmt == "json" else "\n".join(map(json.dumps, rows))).encode()
    path = tmp_path / f"events.{fmt}"
    path.write_bytes(content)
    job = import_job_create(file_path=str(path), fmt=fmt, delete_file_when_done=False)
    real_ingest = imports.event_ingest
    calls = {"n": 0}

    def flaky_ingest(**kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OperationalError("server has gone away")
        return real_ingest(**kwargs)

    monkeypatch.setattr(imports, "event_ingest", flaky_ingest)
    with pytest.raises(OperationalError):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "running" and job.processed == 300 and job.resume_offset > 0
    # when it is run again
    job = import_job_run(job_id=job.pk)
    # then it finishes with exact counters: nothing counted twice, nothing missed
    assert job.status == "completed", job.error
    assert (job.processed, job.accepted, job.duplicates, job.rejected) == (1000, 980, 0, 20)
    assert ImportRowError.objects.filter(job=job).count() == 20
    assert Event.objects.count() == 980
    # and running a finished job again is a no-op
    assert import_job_run(job_id=job.pk).processed == 1000


def test_a_second_runner_of_the_same_job_stops(tmp_path):
    content, _ = csv_file(10)
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    job = import_job_create(file_path=str(path), fmt="csv", delete_file_when_done=False)
    ImportJob.objects.filter(pk=job.pk).update(status="running", resume_offset=123)
    # a runner that believes the job is still at offset 0 commits nothing
    row = imports.Row(number=2, position=2, end_offset=50, item={"event_id": "z"})
    assert imports._chunk_commit(job_id=job.pk, expected_offset=0, rows=[row], progress=imports._Progress(None)) is None
    assert ImportJob.objects.get(pk=job.pk).processed == 0


def test_progress_is_broadcast_to_the_import_group(tmp_path, settings):
    settings.TARGETGRID_IMPORT_CHUNK = 50
    content, _ = csv_file(200, bad_every=40)
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    job = import_job_create(file_path=str(path), fmt="csv", delete_file_when_done=False)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(import_group(job.pk), channel)
    # tests run inside a transaction: broadcasts (made on commit) are run by hand here
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        import_job_run(job_id=job.pk)
    messages = []

    async def drain():
        import asyncio

        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), timeout=0.5))
            except asyncio.TimeoutError:
                return

    async_to_sync(drain)()
    assert messages[0]["status"] == "running"
    final = messages[-1]
    assert final["type"] == "import.progress"
    assert final["status"] == "completed" and final["processed"] == 200 and final["rejected"] == 5
    assert final["errors_url"] == f"/api/imports/{job.pk}/errors.csv"


def test_the_cli_imports_with_a_summary_and_exits_non_zero_on_rejected_rows(tmp_path, capsys):
    content, _ = csv_file(500, bad_every=100)
    path = tmp_path / "events.csv"
    path.write_bytes(content)
    with pytest.raises(CommandError) as raised:
        call_command("import_events", str(path), "--source", "backfill")
    assert raised.value.returncode == 1
    out = capsys.readouterr()
    assert "500 rows" in out.out and "495 accepted" in out.out and "5 rejected" in out.out
    assert "rows/s" in out.err and "ETA" in out.err
    assert Event.objects.filter(source="backfill").count() == 495
    assert path.exists()  # imported in place, never deleted
    # a clean file exits 0
    clean, _ = csv_file(20)
    (tmp_path / "clean.ndjson").write_bytes(
        b"\n".join(json.dumps(dict(r, metadata=json.loads(r["metadata"]))).encode()
                   for r in csv.DictReader(io.StringIO(clean.decode().replace("ev-", "cl-")))))
    call_command("import_events", str(tmp_path / "clean.ndjson"))
    assert Event.objects.filter(event_id__startswith="cl-").count() == 20


def test_cli_refuses_a_missing_file_and_a_wrong_format(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_events", str(tmp_path / "nope.csv"))
    (tmp_path / "x.csv").write_bytes(b"[]")
    with pytest.raises(CommandError, match="looks like a JSON array"):
        call_command("import_events", str(tmp_path / "x.csv"))


@pytest.mark.parametrize(
    "value, expected",
    [("=SUM(A1:A2)", "'=SUM(A1:A2)"), ("+1", "'+1"), ("-cmd", "'-cmd"), ("@x", "'@x"), ("\tx", "'\tx"),
     ("ok", "ok"), (-5, -5), (3, 3), (None, ""), ({"a": "=b"}, '{"a":"=b"}')],
)
def test_csv_cells_are_safe_against_formula_injection(value, expected):
    assert csv_cell(value) == expected


def test_errors_csv_and_exports_escape_formulas(api, tmp_path, django_capture_on_commit_callbacks):
    content = (b"event_id,event_type,timestamp,email,metadata\n"
               b"=HYPERLINK(\"http://evil\"),PAGE_VIEW,2026-01-01T00:00:00Z,not-an-email,\n"
               b"@ok,PAGE_VIEW,2026-01-01T00:00:00Z,x@example.com,\"{\"\"note\"\": \"\"=1+1\"\"}\"\n")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = upload(api, content, "evil.csv").json()["import_id"]
    report = errors_csv(api, job_id)
    assert report[0]["event_id"] == "'=HYPERLINK(\"http://evil\")"
    out = tmp_path / "events.csv"
    call_command("export_events", "--output", str(out))
    exported = list(csv.DictReader(out.open()))
    assert exported[0]["event_id"] == "'@ok"
    assert json.loads(exported[0]["metadata"]) == {"note": "=1+1"}  # JSON cells start with {, never escaped


def test_export_events_and_leads_stream_ndjson_to_stdout(api, capsys, django_capture_on_commit_callbacks):
    content, _ = csv_file(30, leads=3)
    with django_capture_on_commit_callbacks(execute=True):
        upload(api, content, "e.csv")
    capsys.readouterr()
    call_command("export_events", "--format", "ndjson")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 30
    first = json.loads(lines[0])
    assert first["event_id"] == "ev-0" and first["status"] == "processed" and first["points"] == 5
    call_command("export_leads")
    leads = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(lead["email"] for lead in leads) == ["lead0@example.com", "lead1@example.com", "lead2@example.com"]
    assert sum(int(lead["current_score"]) for lead in leads) == 30 * 5


def test_exported_events_reimport_as_duplicates(api, tmp_path, django_capture_on_commit_callbacks):
    content, _ = csv_file(40)
    with django_capture_on_commit_callbacks(execute=True):
        upload(api, content, "e.csv")
    out = tmp_path / "export.csv"
    call_command("export_events", "--output", str(out))
    # the export has extra columns (status, points, ...): keep the import's columns
    rows = list(csv.DictReader(out.open()))
    trimmed = io.StringIO()
    writer = csv.DictWriter(trimmed, fieldnames=["event_id", "event_type", "timestamp", "lead_id", "metadata"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "again.csv"
    path.write_text(trimmed.getvalue())
    call_command("import_events", str(path))
    assert ImportJob.objects.order_by("-pk").first().duplicates == 40
