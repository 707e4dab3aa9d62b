"""Django's error handlers answer JSON under /api/, /webhooks/, /v1/ (errors raised outside a view,
e.g. in a middleware, reach them) and the HTML pages elsewhere."""

import json

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory

from config import errors


@pytest.mark.parametrize("path", ["/api/events", "/webhooks/events", "/v1/batch"])
def test_handlers_answer_json_under_the_api_prefixes(path):
    request = RequestFactory().post(path)
    response = errors.server_error(request)
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert json.loads(response.content)["detail"]
    response = errors.bad_request(request, RequestDataTooBig("too big"))
    assert response.status_code == 413 and "body" in json.loads(response.content)["errors"]
    response = errors.not_found(request, None)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert errors.permission_denied(request, None)["Content-Type"] == "application/json"


def test_handlers_answer_html_elsewhere(db):
    request = RequestFactory().get("/leads/")
    assert errors.server_error(request)["Content-Type"].startswith("text/html")
    assert errors.not_found(request, None)["Content-Type"].startswith("text/html")
