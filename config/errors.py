"""One shape for API errors: ``{"detail": "...", "errors": {field: [messages]}}`` (errors when a
field is at fault)."""

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


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
    return response


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
