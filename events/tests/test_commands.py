"""CLI: creating webhook and Segment sources prints only the credential on stdout."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from events.models import ApiKey, SegmentSource, WebhookSource

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_create_api_key_prints_only_the_key():
    key, err = run("create_api_key", "--name", "crm")
    assert key.startswith("tg_") and "\n" not in key
    assert ApiKey.objects.get(name="crm").key_hash == ApiKey.hash_key(key)
    with pytest.raises(CommandError):
        run("create_api_key", "--name", "crm")


def test_create_webhook_source_signed_and_shared_secret():
    secret, _ = run("create_webhook_source", "--name", "hubspot", "--event-types", "form_submit,DEMO_REQUEST")
    source = WebhookSource.objects.get(name="hubspot")
    assert secret == source.secret and secret.startswith("whsec_")
    assert source.allowed_event_types == ["FORM_SUBMIT", "DEMO_REQUEST"]
    value, _ = run("create_webhook_source", "--name", "cdp", "--mode", "shared_secret", "--header", "X-Token")
    assert WebhookSource.objects.get(name="cdp").secret_header == "X-Token" and value
    with pytest.raises(CommandError):
        run("create_webhook_source", "--name", "cdp")


def test_create_segment_source_prints_the_write_key_once():
    write_key, _ = run("create_segment_source", "--name", "website")
    source = SegmentSource.objects.get(name="website")
    assert write_key.startswith("wk_") and source.write_key_hash == SegmentSource.hash_key(write_key)
    with pytest.raises(CommandError):
        run("create_segment_source", "--name", "website")
