"""File uploads and import jobs: ``POST /api/events/upload``, ``GET /api/imports/<id>``,
``GET /api/imports/<id>/errors.csv``."""

from __future__ import annotations

from django.conf import settings
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_response

from .exports import csv_lines, import_errors_rows
from .imports import SNIFF_BYTES, ImportFileError, import_format_detect, import_progress_payload, import_upload_create
from .models import ImportJob
from .ratelimit import RateLimitedMixin


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    field = "file"  # named in the answer's errors (config.errors)


class EventUploadApi(RateLimitedMixin, APIView):
    """POST /api/events/upload (multipart ``file``; optional ``format``, ``source``): 202 + the job."""

    parser_classes = [MultiPartParser]
    ratelimit_group = "upload"
    ratelimit_rate_setting = "TARGETGRID_RATE_UPLOAD"
    write_permission = "events.add_importjob"

    def initial(self, request, *args, **kwargs):
        # Before anything reads the body (the session CSRF check may): refuse oversized files unread.
        limit = settings.TARGETGRID_UPLOAD_MAX_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise PayloadTooLarge(f"The upload is {length} bytes; file: at most {limit} bytes are accepted "
                                  "(TARGETGRID_UPLOAD_MAX_BYTES).")
        super().initial(request, *args, **kwargs)

    def post(self, request):
        uploaded = request.FILES.get("file")
        if uploaded is None:
            return error_response('Send the file as multipart/form-data field "file".',
                                  status_code=status.HTTP_400_BAD_REQUEST, errors={"file": ["this field is required"]})
        source = (request.data.get("source") or "upload").strip()
        if len(source) > 32:
            return error_response("source is at most 32 characters.", status_code=status.HTTP_400_BAD_REQUEST,
                                  errors={"source": ["at most 32 characters"]})
        head = uploaded.read(SNIFF_BYTES)
        uploaded.seek(0)
        try:
            fmt = import_format_detect(head=head, name=uploaded.name or "", content_type=uploaded.content_type or "",
                                       declared=request.data.get("format") or "")
        except ImportFileError as exc:
            return error_response(f"Cannot import this file: {exc.message}.", status_code=status.HTTP_400_BAD_REQUEST,
                                  errors={exc.field: [exc.message]})
        job = import_upload_create(uploaded=uploaded, fmt=fmt, source=source, created_by=str(request.user))
        body = import_progress_payload(job)
        body["websocket"] = f"/ws/imports/{job.pk}/"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class ImportJobApi(APIView):
    def get(self, request, import_id):
        job = get_object_or_404(ImportJob, pk=import_id)
        body = import_progress_payload(job)
        body.update(
            original_name=job.original_name,
            source=job.source,
            created_by=job.created_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            errors_url=f"/api/imports/{job.pk}/errors.csv",
            websocket=f"/ws/imports/{job.pk}/",
        )
        return Response(body)


class ImportErrorsCsvApi(APIView):
    """The error report: one line per problem (row, event_id, field, message), streamed."""

    def get(self, request, import_id):
        job = get_object_or_404(ImportJob.objects.only("id"), pk=import_id)
        header, rows = import_errors_rows(job_id=job.pk)
        response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response
