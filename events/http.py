"""Request-body helpers for the plain-Django adapters (webhooks, Segment): bounded reads, gzip,
JSON errors in the API's shape (``{"detail": ..., "errors": {field: [...]}}``)."""

from __future__ import annotations

import json
import zlib

from django.http import JsonResponse


class BodyError(Exception):
    def __init__(self, detail: str, *, status: int, field: str = "body"):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.field = field

    def response(self) -> JsonResponse:
        return json_error(self.detail, status=self.status, errors={self.field: [self.detail]})


class BodyTooLarge(BodyError):
    pass


def json_error(detail: str, *, status: int, errors: dict | None = None, **extra) -> JsonResponse:
    body = {"detail": detail}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return JsonResponse(body, status=status)


def read_body(request, *, limit: int, too_large_status: int = 413) -> bytes:
    """The raw body, at most ``limit`` bytes after gzip decoding; BodyError beyond."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BodyError("Content-Length must be an integer.", status=400, field="Content-Length") from None
    encoding = (request.META.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BodyError(f"Content-Encoding {encoding!r} is not supported (use gzip or none).", status=415,
                        field="Content-Encoding")
    too_large = f"The request body is larger than {limit} bytes."
    if declared > limit and encoding == "identity":
        raise BodyTooLarge(too_large, status=too_large_status)
    raw = request.read(limit + 1 if encoding == "identity" else 4 * limit + 1)
    if encoding == "gzip":
        decoder = zlib.decompressobj(wbits=31)
        try:
            raw = decoder.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise BodyError(f"The body is not valid gzip: {exc}.", status=400) from None
    if len(raw) > limit:
        raise BodyTooLarge(too_large, status=too_large_status)
    return raw


def parse_json(raw: bytes):
    if not raw.strip():
        raise BodyError("The body is empty; send JSON.", status=400)
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BodyError("The body is not UTF-8.", status=400) from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
                        status=400) from None
