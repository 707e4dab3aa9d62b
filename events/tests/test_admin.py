"""The ingest-source admin pages render, show each webhook source's mode, and validate input."""

import pytest
from django.test import Client

from events.models import ImportJob, SegmentEventMapping, SegmentSource, WebhookSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


def test_admin_lists_render_and_show_the_mode(admin_client_):
    WebhookSource.objects.create(name="signed-one")
    WebhookSource.objects.create(name="cdp", mode="shared_secret", secret="s" * 20, secret_header="X-Token")
    ImportJob.objects.create(format="csv", file_path="/nonexistent", rejected=3)
    page = admin_client_.get("/admin/events/webhooksource/").content.decode()
    assert "signed (Standard Webhooks)" in page and "shared secret in X-Token" in page
    for path in ("segmentsource", "segmenteventmapping", "segmentidentity", "importjob"):
        assert admin_client_.get(f"/admin/events/{path}/").status_code == 200
    assert "errors.csv (3)" in admin_client_.get("/admin/events/importjob/").content.decode()


def test_rotate_secret_action_keeps_the_old_secret_as_previous(admin_client_):
    source = WebhookSource.objects.create(name="r")
    old = source.secret
    admin_client_.post("/admin/events/webhooksource/", {"action": "rotate_secret", "_selected_action": [source.pk]})
    source.refresh_from_db()
    assert source.previous_secret == old and source.secret != old and source.secret.startswith("whsec_")


def test_adding_a_segment_source_shows_the_write_key_once(admin_client_):
    response = admin_client_.post("/admin/events/segmentsource/add/", {"name": "site", "enabled": "on",
                                                                       "source_tag": "segment"}, follow=True)
    text = response.content.decode()
    assert "shown once" in text
    source = SegmentSource.objects.get(name="site")
    key = text.split("stored hashed): ")[1].split("<")[0].strip()
    assert SegmentSource.hash_key(key) == source.write_key_hash


def test_mapping_and_webhook_forms_validate(admin_client_):
    response = admin_client_.post("/admin/events/segmenteventmapping/add/",
                                  {"event_name": "Signed Up", "event_type": "NO_SUCH_RULE"})
    assert "No scoring rule" in response.content.decode()
    admin_client_.post("/admin/events/segmenteventmapping/add/", {"event_name": "Signed Up", "event_type": "form_submit"})
    assert SegmentEventMapping.objects.get(event_name="Signed Up").event_type == "FORM_SUBMIT"
    response = admin_client_.post("/admin/events/webhooksource/add/", {
        "name": "bad", "mode": "signed", "enabled": "on", "secret": "whsec_!!", "secret_header": "X-Webhook-Secret",
        "allowed_event_types": '["page view"]', "source_tag": "webhook"})
    text = response.content.decode()
    assert "base64" in text and "UPPER_SNAKE" in text
    assert not WebhookSource.objects.filter(name="bad").exists()
