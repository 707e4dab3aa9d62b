"""JSON answers for errors under the machine-facing prefixes (``/api/``, ``/webhooks/``, ``/v1/``).

A client of those paths parses JSON: an HTML error page (Django's 400/413/500) is itself a bug.

* A body larger than ``TARGETGRID_MAX_BODY_BYTES`` (multipart uploads excepted: they have their own
  limit) is answered 413 before anything reads it; Django's ``RequestDataTooBig`` becomes 413 too.
* An exception a view did not answer is logged with its traceback and answered 500 JSON; a
  database that cannot be reached (``OperationalError``, ``InterfaceError``) is 503 JSON with
  ``Retry-After``: the client retries, nothing was acknowledged.

Errors raised outside a view (another middleware) reach ``config.errors.server_error``, which
answers JSON for these prefixes as well.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError

from .errors import API_PREFIXES, json_error_response
from .outage import OutageLog
from .retry import is_transient

logger = logging.getLogger("targetgrid.errors")

DATABASE_RETRY_AFTER = 5  # seconds


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def body_too_large_response(limit: int):
    detail = f"The request body is larger than {limit} bytes."
    return json_error_response(detail, status=413, errors={"body": [f"at most {limit} bytes"]})


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self._outage = OutageLog(logger, seconds=5)

    def __call__(self, request):
        if is_api_path(request.path_info):
            too_large = self._oversized(request)
            if too_large is not None:
                return too_large
        return self.get_response(request)

    def _oversized(self, request):
        if request.content_type == "multipart/form-data":
            return None  # uploads: streamed to disk, limited by TARGETGRID_UPLOAD_MAX_BYTES in their view
        limit = settings.TARGETGRID_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error_response("Content-Length must be an integer.", status=400,
                                       errors={"Content-Length": ["must be an integer"]})
        return body_too_large_response(limit) if length > limit else None

    def process_exception(self, request, exception):
        if not is_api_path(request.path_info):
            return None
        if isinstance(exception, RequestDataTooBig):
            return body_too_large_response(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        if isinstance(exception, (OperationalError, InterfaceError)) and is_transient(exception):
            # an outage fails every request: log it, not each one
            self._outage.warning("database unavailable on %s %s: %s", request.method, request.path, exception,
                                 exc=exception, level=logging.ERROR)
            response = json_error_response(
                "The database is unavailable; nothing was stored. Retry later.", status=503,
                errors={"database": ["unavailable"]})
            response["Retry-After"] = str(DATABASE_RETRY_AFTER)
            return response
        if not isinstance(exception, Exception):
            return None
        from django.http import Http404
        from django.core.exceptions import PermissionDenied, SuspiciousOperation, BadRequest

        if isinstance(exception, (Http404, PermissionDenied, SuspiciousOperation, BadRequest)):
            return None  # Django's handlers (config.errors: JSON for these paths)
        logger.error("unhandled error on %s %s", request.method, request.path, exc_info=exception)
        return json_error_response("Internal server error; it has been logged.", status=500)
