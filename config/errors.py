"""One shape for API errors: ``{"detail": "...", "errors": {field: [messages]}}`` (errors when a
field is at fault), and Django's error handlers (``handler400/403/404/500`` in config/urls.py),
which answer JSON under /api/, /webhooks/ and /v1/ and Django's pages elsewhere."""

from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

API_PREFIXES = ("/api/", "/webhooks/", "/v1/")
# The field a request-level DRF error is about (so every 4xx body names one).
_EXCEPTION_FIELDS = {
    exceptions.ParseError: "body",
    exceptions.UnsupportedMediaType: "Content-Type",
    exceptions.NotAcceptable: "Accept",
    exceptions.MethodNotAllowed: "method",
}


def _flatten(detail):
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [str(item) if not isinstance(item, (dict, list)) else _flatten(item) for item in detail]
    return [str(detail)]


def api_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        if isinstance(errors, dict):
            fields = ", ".join(errors)
            body = {"detail": f"Invalid input: {fields}.", "errors": errors}
        else:
            body = {"detail": " ".join(errors), "errors": {"non_field_errors": errors}}
        response.data = body
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
        name = getattr(exc, "field", None) or next(
            (name for cls, name in _EXCEPTION_FIELDS.items() if isinstance(exc, cls)), None)
        if name:
            response.data["errors"] = {name: [response.data["detail"]]}
    return response


def json_error_response(detail: str, *, status: int, errors: dict | None = None) -> JsonResponse:
    body = {"detail": detail}
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status=status)


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIXES)


def bad_request(request, exception=None, *args, **kwargs):
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    from django.core.exceptions import RequestDataTooBig

    if isinstance(exception, RequestDataTooBig):
        return json_error_response("The request body is too large.", status=413, errors={"body": ["too large"]})
    return json_error_response("Bad request.", status=400, errors={"request": ["refused"]})


def permission_denied(request, exception=None, *args, **kwargs):
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return json_error_response("Forbidden.", status=403)


def not_found(request, exception=None, *args, **kwargs):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return json_error_response(f"No endpoint at {request.path}.", status=404)


def server_error(request, *args, **kwargs):
    """Django has logged the exception (django.request) before calling this."""
    if not _is_api(request):
        return defaults.server_error(request)
    return json_error_response("Internal server error; it has been logged.", status=500)


def error_response(detail: str, *, status_code: int, errors: dict | None = None, **extra) -> Response:
    body = {"detail": detail}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return Response(body, status=status_code)


def api_not_found(request, *args, **kwargs):
    """Unknown /api/ paths answer JSON, not the HTML 404 page."""
    from django.http import JsonResponse

    return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)
