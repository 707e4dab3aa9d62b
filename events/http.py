"""Request-body helpers for every ingest adapter: bounded reads, gzip, bounded JSON parsing, and
JSON errors in the API's shape (``{"detail": ..., "errors": {field: [...]}}``).

JSON bodies (and the JSON inside uploaded files) are parsed by :func:`json_loads`: UTF-8 only and
nested at most ``MAX_JSON_DEPTH`` levels, checked before parsing (Python's parser recurses: ~1,000
levels raise RecursionError). ``NaN``/``Infinity``/``1e999`` still parse (as floats): the event
validation refuses them in the item that carries them, so one bad item does not cost its batch.
The DRF parser and renderer here are the API's (settings ``REST_FRAMEWORK``).
"""

from __future__ import annotations

import json
import re
import zlib

from django.http import JsonResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer

# Arrays and objects inside one another, in a whole body or one row of a file (an event's metadata
# has its own, lower limit: events.validation.METADATA_MAX_DEPTH).
MAX_JSON_DEPTH = 64
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PAIR = re.compile(r"\[\]|\{\}")


class JSONTooDeep(ValueError):
    pass


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if JSON ``text`` nests arrays/objects deeper than ``limit`` (brackets inside strings do
    not count). Two ``str.count`` calls unless the text has more than ``limit`` brackets; then a few
    C-speed passes (strings dropped, innermost pairs removed once per level), which cost about as
    much as parsing the text (~35 ms for a 10,000-event batch of 1.8 MB)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):
        reduced = _PAIR.sub("", brackets)
        if reduced == brackets:  # empty, or mismatched brackets (invalid JSON: the parser says where)
            return False
        brackets = reduced
    return _PAIR.search(brackets) is not None


def json_loads(data: bytes | str, *, what: str = "The body"):
    """Parse JSON text from a client: ValueError (JSONTooDeep, JSONDecodeError, ...) with the reason."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if json_depth_exceeds(text):
        raise JSONTooDeep(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects")
    try:
        return json.loads(text)
    except RecursionError:  # not expected after the check above; never a 500 all the same
        raise JSONTooDeep(f"{what} is nested too deeply") from None


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
        return json_loads(raw)
    except UnicodeDecodeError as exc:
        raise BodyError(f"The body is not UTF-8 (byte {exc.start}).", status=400) from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
                        status=400) from None
    except ValueError as exc:  # too deep, or an integer too long to convert
        raise BodyError(f"The body cannot be parsed: {exc}.", status=400) from None


class JSONParser(BaseParser):
    """DRF's JSON parser through :func:`parse_json`: a 400 naming ``body``, never a RecursionError."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return parse_json(stream.read() if stream is not None else b"")
        except BodyError as exc:
            raise ParseError(exc.detail) from None


class JSONRenderer(DRFJSONRenderer):
    """DRF's renderer, falling back to ASCII escapes when the data holds text that UTF-8 cannot
    encode (a lone surrogate echoed from a client's input): a JSON answer, never a 500."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            ascii_only = type(self)()
            ascii_only.ensure_ascii = True
            return ascii_only.render(data, accepted_media_type, renderer_context)
