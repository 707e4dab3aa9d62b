"""Streaming file imports (CSV, JSON array, NDJSON) through event_ingest, chunk by chunk.

Memory is bounded by the chunk size, never by the file: rows are parsed lazily from the file and
handed to :func:`events.services.event_ingest` ``TARGETGRID_IMPORT_CHUNK`` at a time. Each chunk is
one transaction that also stores its row errors, adds to the job's counters and records where the
next chunk starts (``resume_offset`` in bytes, ``resume_row``), under a lock on the job row. So the
counters are exact, a re-run after a crash continues from the last committed chunk, and a second
runner of the same job notices the offset moved and stops.

Row numbers in the error report: CSV and NDJSON, the line number in the file (the CSV header is
line 1, so they match a spreadsheet's row numbers); JSON, the 1-based position in the array.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import transport
from config.retry import is_transient

from .http import MAX_JSON_DEPTH, json_depth_exceeds, json_loads
from .models import ImportFormat, ImportJob, ImportRowError, ImportStatus
from .services import ACCEPTED, DUPLICATE, REJECTED, event_ingest
from .validation import printable

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("event_id", "event_type", "timestamp", "lead_id", "email", "metadata")
CSV_REQUIRED = ("event_id", "event_type", "timestamp")
MAX_LINE_BYTES = 1024 * 1024
MAX_JSON_ITEM_CHARS = 1024 * 1024
READ_SIZE = 1024 * 1024
SNIFF_BYTES = 64 * 1024
NON_WHITESPACE = re.compile(r"[^ \t\r\n]")
BROADCAST_INTERVAL = 0.25  # at most four progress messages a second per job
MESSAGE_MAX = 1000

EXTENSIONS = {".csv": ImportFormat.CSV, ".json": ImportFormat.JSON, ".ndjson": ImportFormat.NDJSON,
              ".jsonl": ImportFormat.NDJSON}
CONTENT_TYPES = {
    "text/csv": ImportFormat.CSV,
    "application/csv": ImportFormat.CSV,
    "application/vnd.ms-excel": ImportFormat.CSV,  # what some browsers send for .csv
    "application/json": ImportFormat.JSON,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
    "application/x-jsonlines": ImportFormat.NDJSON,
}


class ImportFileError(Exception):
    """The file as a whole cannot be imported (wrong format, bad header, broken JSON)."""

    def __init__(self, message: str, *, field: str = "file"):
        super().__init__(message)
        self.message = message
        self.field = field


# --- Format detection ----------------------------------------------------------------------


def _sniff(head: bytes) -> str:
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    if text.startswith(b"["):
        return ImportFormat.JSON
    if text.startswith(b"{"):
        return ImportFormat.NDJSON
    return ImportFormat.CSV


def import_format_detect(*, head: bytes, name: str = "", content_type: str = "", declared: str = "") -> str:
    """The format of a file from what it claims (``declared``, extension, content type), verified
    against its first bytes; ImportFileError naming the problem otherwise."""
    if b"\x00" in head:
        raise ImportFileError("the file is binary, not CSV, JSON or NDJSON text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            raise ImportFileError(f"the file is not UTF-8 text (byte {exc.start})") from None
    if not head.lstrip(codecs.BOM_UTF8).strip():
        raise ImportFileError("the file is empty")
    declared = (declared or "").strip().lower()
    if declared and declared not in ImportFormat.values:
        raise ImportFileError(f"unknown format {declared!r}; use csv, json or ndjson", field="format")
    claimed = declared or EXTENSIONS.get(os.path.splitext(name or "")[1].lower())
    if not claimed:
        claimed = CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())
    sniffed = _sniff(head)
    if claimed and claimed != sniffed:
        looks = {ImportFormat.JSON: "a JSON array", ImportFormat.NDJSON: "NDJSON (one JSON object per line)",
                 ImportFormat.CSV: "CSV"}[sniffed]
        raise ImportFileError(f"the file claims to be {claimed} but its content looks like {looks}; "
                              f"fix the file or send format={sniffed}")
    fmt = claimed or sniffed
    if fmt in (ImportFormat.CSV, ImportFormat.NDJSON) and _cr_only(head):
        raise ImportFileError("the file ends its lines with a bare CR (classic Mac line endings); "
                              "save it with LF or CRLF line endings")
    if fmt == ImportFormat.CSV:
        csv_header_parse(head.lstrip(codecs.BOM_UTF8).decode("utf-8", "replace").splitlines()[0])
    return fmt


def _cr_only(head: bytes) -> bool:
    """True if the first line break of the sample is a CR not followed by LF."""
    cr = head.find(b"\r")
    if cr == -1:
        return False
    lf = head.find(b"\n")
    return (lf == -1 or cr < lf) and head[cr + 1:cr + 2] != b"\n" and cr + 1 < len(head)


def csv_header_parse(line: str) -> list[str]:
    try:
        header = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        raise ImportFileError("the CSV header row cannot be read") from None
    header = [column.strip().lower() for column in header]
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if unknown:
        raise ImportFileError(f"unknown CSV column(s) {', '.join(map(repr, unknown))}; "
                              f"the columns are {', '.join(CSV_COLUMNS)}")
    missing = [column for column in CSV_REQUIRED if column not in header]
    if missing or not ({"lead_id", "email"} & set(header)):
        missing += [] if {"lead_id", "email"} & set(header) else ["lead_id or email"]
        raise ImportFileError(f"the CSV header lacks {', '.join(missing)} (header: {line.strip()[:200]!r})")
    if len(set(header)) != len(header):
        raise ImportFileError("the CSV header repeats a column")
    return header


# --- Row readers ---------------------------------------------------------------------------


@dataclass
class Row:
    number: int  # as reported in the error report
    position: int  # the reader's row state after this row (stored as resume_row)
    end_offset: int  # the byte just after this row (stored as resume_offset)
    item: dict | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    event_id: str = ""


class _Lines:
    """Binary lines decoded as UTF-8, counting bytes (for resume offsets) and flagging bad lines."""

    def __init__(self, f, offset: int):
        self.f = f
        self.offset = offset
        self.problem = ""

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.f.readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        self.offset += len(line)
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:  # skip the rest of an over-long line without holding it
                rest = self.f.readline(READ_SIZE)
                self.offset += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            self.problem = f"the line is longer than {MAX_LINE_BYTES // 1024} KB"
            return "\n"
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problem = f"not valid UTF-8 (byte {exc.start} of the line)"
            return line.decode("utf-8", "replace")


def _bom_skip(f) -> int:
    if f.read(3) == codecs.BOM_UTF8:
        return 3
    f.seek(0)
    return 0


def rows_csv(f, *, offset: int, position: int, header: list[str]) -> Iterator[Row]:
    """Rows after the header; ``offset`` is just after the header or after the last committed row."""
    f.seek(offset)
    lines = _Lines(f, offset)
    reader = csv.reader(lines, strict=True)
    line_number = position
    while True:
        lines.problem = ""
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            values, lines.problem = None, f"malformed CSV: {exc}"
        start = line_number + 1
        line_number = position + reader.line_num
        if values == [] and not lines.problem:
            continue  # a blank line
        row = Row(number=start, position=line_number, end_offset=lines.offset)
        if lines.problem:
            row.errors = {"row": [lines.problem]}
        elif len(values) != len(header):
            row.errors = {"row": [f"{len(values)} columns, but the header has {len(header)}"]}
        else:
            item = {column: value.strip() for column, value in zip(header, values) if value.strip() != ""}
            row.event_id = item.get("event_id", "")[:255]
            if "metadata" in item:
                try:
                    item["metadata"] = json_loads(item["metadata"], what="metadata")
                except json.JSONDecodeError as exc:
                    row.errors = {"metadata": [f"not valid JSON: {exc.msg} at column {exc.colno}"]}
                except ValueError as exc:  # nested too deeply, an integer too long
                    row.errors = {"metadata": [f"cannot be parsed: {exc}"]}
            if not row.errors:
                row.item = item
        yield row


def rows_ndjson(f, *, offset: int, position: int) -> Iterator[Row]:
    f.seek(offset)
    lines = _Lines(f, offset)
    line_number = position
    for text in lines:
        line_number += 1
        if not lines.problem and not text.strip():
            continue
        row = Row(number=line_number, position=line_number, end_offset=lines.offset)
        if lines.problem:
            row.errors = {"row": [lines.problem]}
            lines.problem = ""
        else:
            try:
                value = json_loads(text, what="the line")
            except json.JSONDecodeError as exc:
                row.errors = {"row": [f"not valid JSON: {exc.msg} at column {exc.colno}"]}
            except ValueError as exc:  # nested too deeply, an integer too long
                row.errors = {"row": [f"cannot be parsed: {exc}"]}
            else:
                _set_item(row, value)
        yield row


def _set_item(row: Row, value) -> None:
    if isinstance(value, dict):
        row.item = value
        event_id = value.get("event_id")
        row.event_id = str(event_id)[:255] if isinstance(event_id, (str, int)) else ""
    else:
        row.errors = {"row": ["each event must be a JSON object"]}


def rows_json(f, *, offset: int, position: int) -> Iterator[Row]:
    """Elements of a top-level JSON array, decoded one at a time from a sliding text buffer."""
    decoder = json.JSONDecoder()
    f.seek(offset)
    if offset == 0:
        offset = _bom_skip(f)
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buf, pos, eof = "", 0, False
    consumed = offset  # bytes before buf[pos]
    state = "start" if position == 0 else "after"
    count = position

    def fill() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        data = f.read(READ_SIZE)
        eof = not data
        try:
            text = utf8.decode(data, final=eof)
        except UnicodeDecodeError:
            raise ImportFileError(f"the file is not UTF-8 text (near byte {consumed + len(buf[pos:].encode())})") from None
        buf, pos = buf[pos:] + text, 0
        return True

    def advance(new_pos: int) -> None:
        nonlocal pos, consumed
        consumed += len(buf[pos:new_pos].encode("utf-8"))
        pos = new_pos

    def skip_ws() -> str:
        while True:
            found = NON_WHITESPACE.search(buf, pos)
            if found:
                advance(found.start())
                return buf[pos]
            advance(len(buf))
            if not fill():
                return ""

    while True:
        char = skip_ws()
        if state == "start":
            if char != "[":
                raise ImportFileError("a JSON import must be one array of event objects")
            advance(pos + 1)
            state = "first"
            continue
        if state == "after":
            if char == ",":
                advance(pos + 1)
                state = "item"
                continue
            if char == "]":
                advance(pos + 1)
                state = "end"
                continue
            raise ImportFileError(f"expected ',' or ']' after array element {count} (byte {consumed})")
        if state == "end":
            if char:
                raise ImportFileError(f"unexpected data after the closing ']' (byte {consumed})")
            return
        if char == "]" and state == "first":
            advance(pos + 1)
            state = "end"
            continue
        if not char:
            raise ImportFileError("the JSON array is not closed (the file ends inside it)")
        problem = ""
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                if json_depth_exceeds(buf[pos:end]):
                    problem = f"the element is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
                break
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_JSON_ITEM_CHARS or not fill():
                    raise ImportFileError(
                        f"invalid JSON in array element {count + 1} (byte {consumed}): {exc.msg}"
                    ) from None
            except (RecursionError, ValueError) as exc:  # too deep for the parser, an integer too long
                end = _value_end(buf, pos)
                if end is None:  # the element goes on past the buffer
                    if len(buf) - pos > MAX_JSON_ITEM_CHARS or not fill():
                        raise ImportFileError(f"array element {count + 1} (byte {consumed}) cannot be parsed") from None
                    continue
                problem = ("the element is nested too deeply to parse" if isinstance(exc, RecursionError)
                           else f"the element cannot be parsed: {exc}")
                break
        advance(end)
        count += 1
        row = Row(number=count, position=count, end_offset=consumed)
        if problem:
            row.errors = {"row": [problem]}
        else:
            _set_item(row, value)
        yield row
        state = "after"


_VALUE_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]|,')


def _value_end(buf: str, pos: int) -> int | None:
    """Where the JSON value starting at ``pos`` ends (found by its brackets, without parsing it), or
    None if it goes on past ``buf``: to skip an array element the parser cannot take."""
    depth = 0
    for match in _VALUE_TOKENS.finditer(buf, pos):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            if depth == 0:
                return match.start()  # a scalar, ended by the array's "]"
            depth -= 1
            if depth == 0:
                return match.end()
        elif token == "," and depth == 0:
            return match.start()
    return None


def rows_iter(job: ImportJob, f) -> Iterator[Row]:
    if job.format == ImportFormat.CSV:
        offset, position = job.resume_offset, job.resume_row
        if offset == 0:
            offset = _bom_skip(f)
            header_line = f.readline(MAX_LINE_BYTES)
            offset += len(header_line)
            header = csv_header_parse(header_line.decode("utf-8", "replace"))
            position = 1
            ImportJob.objects.filter(pk=job.pk).update(csv_header=header)
            job.csv_header = header
        return rows_csv(f, offset=offset, position=position, header=job.csv_header)
    if job.format == ImportFormat.NDJSON:
        return rows_ndjson(f, offset=job.resume_offset, position=job.resume_row)
    return rows_json(f, offset=job.resume_offset, position=job.resume_row)


# --- Running a job -------------------------------------------------------------------------


def _batched(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_progress_payload(job: ImportJob) -> dict:
    total = max(job.total_estimate, job.processed)
    percent = 100.0 if job.status == ImportStatus.COMPLETED else (
        round(100.0 * job.resume_offset / job.file_size, 1) if job.file_size else 0.0)
    payload = {
        "import_id": job.pk,
        "status": job.status,
        "format": job.format,
        "processed": job.processed,
        "accepted": job.accepted,
        "duplicates": job.duplicates,
        "rejected": job.rejected,
        "total_estimate": total,
        "percent": min(percent, 100.0),
        "bytes_processed": job.resume_offset,
        "file_size": job.file_size,
        "error": job.error,
        "url": f"/api/imports/{job.pk}",
    }
    if job.rejected:
        payload["errors_url"] = f"/api/imports/{job.pk}/errors.csv"
    return payload


class _Progress:
    def __init__(self, callback: Callable[[ImportJob], None] | None):
        self.callback = callback
        self.last = 0.0

    def __call__(self, job: ImportJob, *, final: bool = False) -> None:
        if self.callback is not None:
            self.callback(job)
        now = time.monotonic()
        if final or now - self.last >= BROADCAST_INTERVAL:
            self.last = now
            transport.notify_on_commit("import.progress", import_progress_payload(job))


def import_job_run(*, job_id: int, on_progress: Callable[[ImportJob], None] | None = None) -> ImportJob:
    """Run (or resume) an import until the file is done; safe to call twice or concurrently."""
    progress = _Progress(on_progress)
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.done:
            return job
        job.status = ImportStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "started_at", "updated_at"])
        progress(job, final=True)
    chunk_size = settings.TARGETGRID_IMPORT_CHUNK
    try:
        with open(job.file_path, "rb") as f:
            for rows in _batched(rows_iter(job, f), chunk_size):
                committed = _chunk_commit_isolating(job_id=job.pk, expected_offset=job.resume_offset, rows=rows,
                                                    progress=progress)
                if committed is None:
                    logger.info("import %s: another runner advanced it; this one stops", job.pk)
                    return ImportJob.objects.get(pk=job.pk)
                job = committed
    except ImportFileError as exc:
        return _finish(job.pk, status=ImportStatus.FAILED, error=exc.message, progress=progress)
    except FileNotFoundError:
        return _finish(job.pk, status=ImportStatus.FAILED, error="the uploaded file is gone", progress=progress)
    except Exception as exc:
        if is_transient(exc):
            raise  # the task retries and resumes at the committed offset
        logger.exception("import %s failed", job.pk)
        return _finish(job.pk, status=ImportStatus.FAILED, error=f"internal error: {type(exc).__name__}",
                       progress=progress)
    return _finish(job.pk, status=ImportStatus.COMPLETED, error="", progress=progress)


def _chunk_commit_isolating(*, job_id: int, expected_offset: int, rows: list[Row],
                            progress: _Progress) -> ImportJob | None:
    """:func:`_chunk_commit`; if the chunk fails for anything but a transient database error, split
    it until the failing rows stand alone, and record each as a row error with the reason: one row
    never fails its chunk or the job."""
    try:
        return _chunk_commit(job_id=job_id, expected_offset=expected_offset, rows=rows, progress=progress)
    except Exception as exc:
        # Transient (lock wait, lost connection): the task retries and resumes at the committed
        # offset. mysqlclient raises a refused *value* (1366, 4025 CHECK) as OperationalError too:
        # the error code decides (config.retry.is_transient), not the class.
        if is_transient(exc):
            raise
        if len(rows) == 1:
            logger.warning("import %s: row %s could not be stored", job_id, rows[0].number, exc_info=True)
            reason = f"could not be stored: {type(exc).__name__}: {printable(str(exc))}"
            return _chunk_commit(job_id=job_id, expected_offset=expected_offset, rows=rows, progress=progress,
                                 refused=reason)
        middle = len(rows) // 2
        job = _chunk_commit_isolating(job_id=job_id, expected_offset=expected_offset, rows=rows[:middle],
                                      progress=progress)
        if job is None:
            return None
        return _chunk_commit_isolating(job_id=job_id, expected_offset=job.resume_offset, rows=rows[middle:],
                                       progress=progress)


def _chunk_commit(*, job_id: int, expected_offset: int, rows: list[Row], progress: _Progress,
                  refused: str = "") -> ImportJob | None:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status != ImportStatus.RUNNING or job.resume_offset != expected_offset:
            return None
        if refused:  # a row that failed on its own (see _chunk_commit_isolating): reported, not stored
            for row in rows:
                row.errors = row.errors or {"row": [refused]}
        with_items = [row for row in rows if row.item is not None and not row.errors]
        result = event_ingest(items=[row.item for row in with_items], source=job.source)
        errors: list[ImportRowError] = []
        for row in rows:
            if row.errors:
                errors.extend(_row_errors(job, row, row.errors))
        statuses = {ACCEPTED: 0, DUPLICATE: 0, REJECTED: 0}
        for row, item in zip(with_items, result.items):
            statuses[item.status] += 1
            if item.status == REJECTED:
                row.event_id = item.event_id or row.event_id
                errors.extend(_row_errors(job, row, item.errors))
        ImportRowError.objects.bulk_create(errors, batch_size=1000)
        job.processed += len(rows)
        job.accepted += statuses[ACCEPTED]
        job.duplicates += statuses[DUPLICATE]
        job.rejected += statuses[REJECTED] + sum(1 for row in rows if row.errors)
        job.resume_offset = rows[-1].end_offset
        job.resume_row = rows[-1].position
        if job.resume_offset:
            job.total_estimate = max(job.processed, int(job.processed * job.file_size / job.resume_offset))
        job.save(update_fields=["processed", "accepted", "duplicates", "rejected", "resume_offset", "resume_row",
                                "total_estimate", "updated_at"])
        progress(job)
    return job


def _row_errors(job: ImportJob, row: Row, errors: dict) -> list[ImportRowError]:
    return [
        ImportRowError(job=job, row=row.number, event_id=printable(row.event_id or "")[:255], field=name[:100],
                       message=printable(str(message))[:MESSAGE_MAX])
        for name, messages in errors.items()
        for message in messages
    ]


def _finish(job_id: int, *, status: str, error: str, progress: _Progress) -> ImportJob:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.done:
            return job
        job.status = status
        job.error = error
        job.finished_at = timezone.now()
        if status == ImportStatus.COMPLETED:
            job.total_estimate = job.processed
        job.save(update_fields=["status", "error", "finished_at", "total_estimate", "updated_at"])
        progress(job, final=True)
    if job.delete_file_when_done:
        try:
            os.remove(job.file_path)
        except FileNotFoundError:
            pass
    log = logger.info if status == ImportStatus.COMPLETED else logger.warning
    log("import %s %s: %d rows, %d accepted, %d duplicates, %d rejected%s", job.pk, status, job.processed,
        job.accepted, job.duplicates, job.rejected, f" ({error})" if error else "")
    return job


# --- Creating and dispatching jobs ---------------------------------------------------------


def uploads_dir():
    path = settings.DATA_DIR / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def import_job_create(*, file_path: str, fmt: str, source: str = "upload", original_name: str = "",
                      created_by: str = "", delete_file_when_done: bool = True) -> ImportJob:
    """A queued job for a file already on disk; dispatched after commit."""
    job = ImportJob.objects.create(
        format=fmt,
        source=source,
        original_name=original_name[:255],
        file_path=str(file_path),
        file_size=os.path.getsize(file_path),
        created_by=created_by[:150],
        delete_file_when_done=delete_file_when_done,
    )
    return job


def import_upload_create(*, uploaded, fmt: str, source: str, created_by: str) -> ImportJob:
    """Take over an uploaded file (Django has streamed it to a temporary file) and queue its import."""
    from django.core.files.move import file_move_safe

    with transaction.atomic():
        job = ImportJob.objects.create(format=fmt, source=source, original_name=(uploaded.name or "")[:255],
                                       file_path="", created_by=created_by[:150])
        destination = uploads_dir() / f"import-{job.pk}.{fmt}"
        if hasattr(uploaded, "temporary_file_path"):
            file_move_safe(uploaded.temporary_file_path(), str(destination), allow_overwrite=True)
        else:  # small uploads are kept in memory by Django
            with open(destination, "wb") as out:
                for piece in uploaded.chunks():
                    out.write(piece)
        job.file_path = str(destination)
        job.file_size = os.path.getsize(destination)
        job.save(update_fields=["file_path", "file_size", "updated_at"])
        import_job_enqueue(job_id=job.pk)
    return job


def import_job_enqueue(*, job_id: int) -> None:
    transport.publish_on_commit("events.import_file", job_id)


def import_job_send(*, job_id: int) -> None:
    """Start the job now (a broker down is logged: the job stays queued; the stalled-import sweep resends it)."""
    transport.publish("events.import_file", job_id)


def imports_resume_stalled(*, older_than_seconds: int = 300) -> int:
    """Re-send jobs that are queued or running but have not moved for a while (a dead worker)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    ids = list(ImportJob.objects.filter(status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING],
                                        updated_at__lte=cutoff).values_list("pk", flat=True)[:100])
    for job_id in ids:
        logger.info("import %s stalled; resuming from its last committed chunk", job_id)
        import_job_send(job_id=job_id)
    return len(ids)
