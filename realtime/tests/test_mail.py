"""E-mail alert digests against a real SMTP server (aiosmtpd on 127.0.0.1, ports 19210-19249) and a
real database: events are scored through the pipeline (inline transport), the alerts fanned out by
realtime.alerts, and the digests sent by realtime.mail through Django's SMTP backend.

Time is passed in (``digests_send(now=...)``): the gather delay and the window are decided from the
alerts' own timestamps, so nothing here waits or measures time."""

from __future__ import annotations

import email
import email.policy
import itertools
import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from conftest import event_payload
from events.services import event_ingest
from leads.models import Lead
from leads.services import lead_create
from realtime import alerts, mail
from realtime.models import AlertRecipient
from scoring.models import AlertEvent, AlertKind, Stage, StageSettings
from scoring.services import lead_max_score_set

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.localhost]

GATHER, WINDOW = 5, 60
_ports = itertools.count(19210)


class Inbox:
    """The aiosmtpd handler: every message received, parsed."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in m["To"]]


def smtp_settings(port: int):
    return override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=port,
        EMAIL_HOST_USER="", EMAIL_HOST_PASSWORD="", EMAIL_USE_TLS=False, EMAIL_USE_SSL=False, EMAIL_TIMEOUT=5,
        DEFAULT_FROM_EMAIL="TargetGrid <alerts@targetgrid.test>", TARGETGRID_PUBLIC_URL="https://tg.example.com",
        TARGETGRID_ALERT_GATHER_SECONDS=GATHER, TARGETGRID_ALERT_DIGEST_SECONDS=WINDOW,
    )


@pytest.fixture
def smtp():
    """A real SMTP server, and Django's SMTP backend pointed at it."""
    inbox = Inbox()
    port = next(_ports)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port
    try:
        with smtp_settings(port):
            yield inbox
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def stages():
    """The default stages (transactional tests flush the rows the data migration made)."""
    for position, (name, threshold) in enumerate([("Cold", None), ("Warm", 40), ("MQL", 100), ("SQL", 300)]):
        Stage.objects.update_or_create(name=name, defaults={"position": position * 10, "min_score": threshold})
    StageSettings.objects.update_or_create(pk=1, defaults={"version": 1, "score_thresholds": []})


def ingest(*payloads):
    result = event_ingest(items=list(payloads), source="test")
    assert all(item.status == "accepted" for item in result.items), result.items


def purchase(n: int, email_address: str, **extra):
    return event_payload(f"buy-{n}-{email_address}", event_type="PURCHASE", email=email_address, **extra)


def last_alert_time():
    return AlertEvent.objects.order_by("-id").values_list("created_at", flat=True).first()


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def listed(message) -> list[str]:
    """The alert lines of a digest's text part."""
    return [line[2:] for line in text_of(message).splitlines() if line.startswith("- ")]


# --- Acceptance 1: one lead crossing MQL -> one e-mail ------------------------------------------


def test_a_lead_crossing_mql_sends_exactly_one_email_with_the_lead_and_its_stage(smtp):
    # Given a recipient with the default filters,
    AlertRecipient.objects.create(email="sales@example.com")
    # when a lead's purchase takes it from nothing to 100 points (MQL), scored through the pipeline,
    lead_create(email="ann@example.com", first_name="Ann", last_name="Example", company="Acme & Co")
    ingest(purchase(1, "ann@example.com"))
    lead = Lead.objects.get(email="ann@example.com")
    assert lead.stage == "MQL"
    alert = AlertEvent.objects.get()
    assert alert.dispatched and alert.kind == AlertKind.STAGE_CHANGED
    # then nothing is sent during the gather delay (the inline wake-up after scoring sent nothing),
    assert smtp.messages == []
    assert mail.digests_send(now=alert.created_at + timedelta(seconds=GATHER - 1)) == 0
    # and once it has passed, exactly one e-mail arrives, naming the lead and the stage,
    assert mail.digests_send(now=alert.created_at + timedelta(seconds=GATHER)) == 1
    assert mail.digests_send(now=alert.created_at + timedelta(seconds=GATHER + 1)) == 0
    assert mail.digests_send(now=alert.created_at + timedelta(seconds=GATHER + WINDOW + 1)) == 0
    [message] = smtp.messages
    assert smtp.envelopes[0].rcpt_tos == ["sales@example.com"]
    assert message["Subject"] == "[TargetGrid] Ann Example entered MQL"
    assert message["From"] == "TargetGrid <alerts@targetgrid.test>"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = text_of(message), html_of(message)
    link = f"https://tg.example.com/leads/{lead.id}/"
    for part in (text, html):
        assert "ann@example.com" in part and "100" in part and "MQL" in part and link in part
    assert "Acme & Co" in text and "Acme &amp; Co" in html  # escaped in HTML only
    # and the recipient's cursor is past the alert.
    recipient = AlertRecipient.objects.get()
    assert recipient.cursor == alert.id and recipient.last_error == ""
    assert recipient.last_sent_at == alert.created_at + timedelta(seconds=GATHER)


def test_fifty_leads_crossing_within_the_window_make_one_digest_listing_fifty(smtp):
    AlertRecipient.objects.create(email="sales@example.com")
    # Given a first lead already mailed alone,
    ingest(purchase(0, "first@example.com"))
    first_sent = last_alert_time() + timedelta(seconds=GATHER)
    assert mail.digests_send(now=first_sent) == 1
    # when 50 leads cross MQL within the window (two batches),
    addresses = [f"lead{n}@example.com" for n in range(50)]
    ingest(*(purchase(1, a) for a in addresses[:20]))
    ingest(*(purchase(1, a) for a in addresses[20:]))
    assert AlertEvent.objects.filter(kind=AlertKind.STAGE_CHANGED).count() == 51
    # then nothing more goes out within the window,
    assert mail.digests_send(now=first_sent + timedelta(seconds=WINDOW - 1)) == 0
    # and at its end one digest lists all fifty.
    assert mail.digests_send(now=first_sent + timedelta(seconds=WINDOW)) == 1
    assert len(smtp.messages) == 2
    digest = smtp.messages[1]
    assert digest["Subject"] == "[TargetGrid] 50 alerts"
    rows = listed(digest)
    assert len(rows) == 50
    assert sorted(row.split(" | ")[1] for row in rows) == sorted(addresses)
    assert all(row.endswith("MQL") and "entered MQL" in row for row in rows)
    assert html_of(digest).count("entered MQL</a>") == 50
    assert "more." not in text_of(digest)


def test_a_digest_lists_at_most_the_cap_and_counts_the_rest(smtp, monkeypatch):
    monkeypatch.setattr(mail, "LIST_CAP", 20)
    AlertRecipient.objects.create(email="sales@example.com")
    ingest(*(purchase(1, f"lead{n}@example.com") for n in range(50)))
    assert mail.digests_send(now=last_alert_time() + timedelta(seconds=GATHER)) == 1
    [digest] = smtp.messages
    assert digest["Subject"] == "[TargetGrid] 50 alerts"
    assert len(listed(digest)) == 20
    assert "... and 30 more." in text_of(digest) and "and 30 more." in html_of(digest)
    assert AlertRecipient.objects.get().cursor == AlertEvent.objects.latest("id").id


def test_dropping_below_and_crossing_again_after_the_window_sends_a_second_email(smtp):
    AlertRecipient.objects.create(email="sales@example.com")
    ingest(purchase(1, "ann@example.com"))
    lead = Lead.objects.get()
    sent_at = last_alert_time() + timedelta(seconds=GATHER)
    assert mail.digests_send(now=sent_at) == 1
    # Given the lead dropped below MQL (a cap of 50: Warm) and crossed again (cap lifted),
    assert lead_max_score_set(lead_id=lead.id, max_score=50)
    assert Lead.objects.get().stage == "Warm"
    assert lead_max_score_set(lead_id=lead.id, max_score=1000)
    assert Lead.objects.get().stage == "MQL"
    assert AlertEvent.objects.filter(kind=AlertKind.STAGE_CHANGED).count() == 3
    # when the window of the first e-mail is over,
    assert mail.digests_send(now=sent_at + timedelta(seconds=WINDOW - 1)) == 0
    assert mail.digests_send(now=sent_at + timedelta(seconds=WINDOW)) == 1
    # then a second single-alert e-mail says it entered MQL again (the drop is filtered: only_up).
    assert [m["Subject"] for m in smtp.messages] == ["[TargetGrid] ann@example.com entered MQL"] * 2


# --- Filters ---------------------------------------------------------------------------------------


def test_filters_by_kind_stage_and_direction(smtp):
    StageSettings.objects.filter(pk=1).update(score_thresholds=[150], version=2)
    # Given four recipients with different filters,
    AlertRecipient.objects.create(email="crossings@example.com", event_kinds=[AlertKind.SCORE_CROSSED])
    AlertRecipient.objects.create(email="sql@example.com", stages=["sql"])  # case does not matter
    AlertRecipient.objects.create(email="everything@example.com", only_up=False)
    AlertRecipient.objects.create(email="default@example.com")
    AlertRecipient.objects.create(email="off@example.com", enabled=False)
    # when a lead goes Cold -> MQL -> SQL (crossing 150) -> Warm (crossing 150 down),
    ingest(purchase(1, "ann@example.com"))
    ingest(purchase(2, "ann@example.com", minutes=1), purchase(3, "ann@example.com", minutes=2),
           purchase(4, "ann@example.com", minutes=3))
    lead = Lead.objects.get()
    assert lead.stage == "SQL"
    lead_max_score_set(lead_id=lead.id, max_score=50)
    assert AlertEvent.objects.count() == 5
    assert mail.digests_send(now=last_alert_time() + timedelta(seconds=GATHER)) == 4
    # then each gets what it asked for.
    def lines(address):
        [message] = smtp.to(address)
        rows = listed(message)
        return [row.split(" | ")[0] for row in rows] if rows else [message["Subject"].removeprefix("[TargetGrid] ")]

    assert lines("crossings@example.com") == ["ann@example.com crossed 150 points"]
    # (in the order they happened: a transaction writes its crossings before its stage change)
    assert lines("sql@example.com") == ["ann@example.com crossed 150 points", "ann@example.com entered SQL"]
    assert lines("default@example.com") == [
        "ann@example.com entered MQL", "ann@example.com crossed 150 points", "ann@example.com entered SQL"]
    assert lines("everything@example.com") == [
        "ann@example.com entered MQL", "ann@example.com crossed 150 points", "ann@example.com entered SQL",
        "ann@example.com fell below 150 points", "ann@example.com dropped to Warm"]
    assert smtp.to("off@example.com") == []
    assert len(smtp.messages) == 4


def test_alerts_nobody_wants_move_the_cursor_without_an_email(smtp):
    recipient = AlertRecipient.objects.create(email="sql@example.com", stages=["SQL"])
    ingest(purchase(1, "ann@example.com"))  # enters MQL: not wanted
    assert mail.digests_send(now=last_alert_time() + timedelta(seconds=GATHER + WINDOW)) == 0
    recipient.refresh_from_db()
    assert smtp.messages == [] and recipient.cursor == AlertEvent.objects.get().id and recipient.last_sent_at is None


def test_an_endpoint_paused_notice_reaches_every_recipient(smtp):
    # Given recipients whose filters would refuse it,
    AlertRecipient.objects.create(email="sql@example.com", stages=["SQL"], event_kinds=[AlertKind.SCORE_CROSSED])
    AlertRecipient.objects.create(email="default@example.com")
    # when the webhook sender pauses an endpoint and says so (an undispatched operator notice),
    notice = AlertEvent.objects.create(
        kind=AlertKind.ENDPOINT_PAUSED, created_at=timezone.now(),
        payload={"id": "x", "type": "endpoint.paused", "timestamp": "", "data": {
            "endpoint": {"id": 7, "name": "CRM\nsync", "url": "https://crm.example.com/hook"},
            "failures": 5, "last_error": "HTTP 500"}},  # what realtime.outbound writes when it pauses one
    )
    assert mail.digests_send(now=notice.created_at + timedelta(seconds=GATHER)) == 0  # not dispatched yet
    alerts.alerts_dispatch()
    # then every recipient gets it.
    assert mail.digests_send(now=notice.created_at + timedelta(seconds=GATHER)) == 2
    assert sorted(m["To"] for m in smtp.messages) == ["default@example.com", "sql@example.com"]
    assert {m["Subject"] for m in smtp.messages} == {"[TargetGrid] Webhook endpoint CRM sync paused"}
    assert "5 consecutive failures; last: HTTP 500" in text_of(smtp.messages[0])


def test_the_cursor_never_passes_an_alert_not_dispatched_yet(smtp):
    # Given an older alert still being fanned out while a newer one is already dispatched,
    AlertRecipient.objects.create(email="sales@example.com")
    ingest(purchase(1, "ann@example.com"), purchase(1, "bob@example.com"))
    older, newer = AlertEvent.objects.order_by("id")
    AlertEvent.objects.filter(pk=older.pk).update(dispatched=False)
    # when the digest is due, nothing is sent and the cursor stays before the older one;
    due = newer.created_at + timedelta(seconds=GATHER)
    assert mail.digests_send(now=due) == 0
    assert AlertRecipient.objects.get().cursor < older.id
    # once it is dispatched, both go in one digest.
    alerts.alerts_dispatch()
    assert mail.digests_send(now=due) == 1
    [message] = smtp.messages
    assert sorted(row.split(" | ")[1] for row in listed(message)) == ["ann@example.com", "bob@example.com"]


# --- Failures --------------------------------------------------------------------------------------


def test_smtp_down_never_reaches_scoring_and_the_digest_arrives_once_when_it_is_back():
    port = next(_ports)
    with smtp_settings(port), override_settings(TARGETGRID_ALERT_GATHER_SECONDS=0):
        AlertRecipient.objects.create(email="sales@example.com")
        # Given no SMTP server listening, when a lead crosses MQL (scoring sends at once: no gather),
        ingest(purchase(1, "ann@example.com"))
        # then scoring and the fan-out went through,
        assert Lead.objects.get().stage == "MQL" and AlertEvent.objects.get().dispatched
        # the failure is recorded, the cursor did not move,
        recipient = AlertRecipient.objects.get()
        assert "ConnectionRefusedError" in recipient.last_error and recipient.cursor == 0
        failed_at = recipient.last_sent_at
        assert failed_at is not None
        # and the next wake-ups within the window back off (no new attempt).
        assert mail.digests_send(now=failed_at + timedelta(seconds=WINDOW - 1)) == 0
        # When the server is back,
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            assert mail.digests_send(now=failed_at + timedelta(seconds=WINDOW - 1)) == 0
            assert mail.digests_send(now=failed_at + timedelta(seconds=WINDOW)) == 1
            assert mail.digests_send(now=failed_at + timedelta(seconds=3 * WINDOW)) == 0
        finally:
            controller.stop()
    # then the digest arrived exactly once, and the error is cleared.
    [message] = inbox.messages
    assert message["Subject"] == "[TargetGrid] ann@example.com entered MQL"
    recipient.refresh_from_db()
    assert recipient.last_error == "" and recipient.cursor == AlertEvent.objects.get().id


class Killed(BaseException):
    """The worker dies (SIGKILL) right after the SMTP server accepted the e-mail."""


def test_a_sender_killed_after_sending_sends_again_next_window_at_least_once(smtp, monkeypatch):
    AlertRecipient.objects.create(email="sales@example.com")
    ingest(purchase(1, "ann@example.com"))
    due = last_alert_time() + timedelta(seconds=GATHER)
    send = mail._send

    def send_then_die(address, digest):
        send(address, digest)
        raise Killed

    # Given a sender killed between the send and the cursor's update,
    monkeypatch.setattr(mail, "_send", send_then_die)
    with pytest.raises(Killed):
        mail.digests_send(now=due)
    monkeypatch.setattr(mail, "_send", send)
    assert len(smtp.messages) == 1 and AlertRecipient.objects.get().cursor == 0
    # when the next worker runs: nothing within the window (it was claimed), the same alert after it.
    assert mail.digests_send(now=due + timedelta(seconds=WINDOW - 1)) == 0
    assert mail.digests_send(now=due + timedelta(seconds=WINDOW)) == 1
    assert [m["Subject"] for m in smtp.messages] == ["[TargetGrid] ann@example.com entered MQL"] * 2
    assert AlertRecipient.objects.get().cursor == AlertEvent.objects.get().id


def test_two_concurrent_senders_send_one_email(smtp, monkeypatch):
    # (MariaDB/PostgreSQL: the row lock; SQLite: its IMMEDIATE transactions serialise the two)
    AlertRecipient.objects.create(email="sales@example.com")
    ingest(purchase(1, "ann@example.com"))
    due = last_alert_time() + timedelta(seconds=GATHER)
    # Given a digest collection that takes a while (the recipient row is locked meanwhile),
    collect = mail._digest_collect

    def slow_collect(recipient):
        digest = collect(recipient)
        threading.Event().wait(0.3)
        return digest

    monkeypatch.setattr(mail, "_digest_collect", slow_collect)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(mail.digests_send(now=due))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    # when two workers send the digests at the same moment,
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # then exactly one e-mail goes out.
    assert errors == []
    assert sorted(results) == [0, 1]
    assert len(smtp.messages) == 1


# --- Wake-up, route, admin -------------------------------------------------------------------------


def test_the_digest_task_is_routed_off_the_scoring_queue():
    from config.celery import app

    assert app.amqp.router.route({}, "realtime.mail_digests")["queue"].name == "outbound"
    assert app.amqp.router.route({}, "realtime.alerts_dispatch")["queue"].name == "realtime"


def test_the_admin_sends_a_test_email_and_validates_filters(smtp, client, staff_user):
    client.force_login(staff_user)
    ingest(purchase(1, "ann@example.com"))  # history before the recipient exists
    # Given a recipient added in the admin: bad filters are refused,
    response = client.post("/admin/realtime/alertrecipient/add/", {
        "email": "ops@example.com", "enabled": "on", "event_kinds": '["lead.nope"]', "stages": "[]", "only_up": "on"})
    assert response.status_code == 200 and b"A list of kinds among" in response.content
    response = client.post("/admin/realtime/alertrecipient/add/", {
        "email": "ops@example.com", "enabled": "on", "event_kinds": "[]", "stages": '["MQL"]', "only_up": "on"})
    assert response.status_code == 302
    recipient = AlertRecipient.objects.get()
    # and it starts after the history (the alert before it is not mailed),
    assert recipient.cursor == AlertEvent.objects.get().id
    assert mail.digests_send(now=last_alert_time() + timedelta(seconds=GATHER + WINDOW)) == 0
    # when the operator sends a test e-mail,
    response = client.post("/admin/realtime/alertrecipient/", {
        "action": "send_test_email", "_selected_action": [recipient.pk]}, follow=True)
    # then it arrives, and the list shows the recipient.
    assert b"Test e-mail sent to ops@example.com" in response.content
    [message] = smtp.messages
    assert message["To"] == "ops@example.com" and "Test e-mail" in message["Subject"]
    assert b"ops@example.com" in client.get("/admin/realtime/alertrecipient/").content
    recipient.refresh_from_db()
    assert recipient.cursor == AlertEvent.objects.get().id and recipient.last_sent_at is None


def test_a_failed_test_email_is_shown_and_recorded(client, staff_user):
    client.force_login(staff_user)
    recipient = AlertRecipient.objects.create(email="ops@example.com")
    with smtp_settings(next(_ports)):  # nobody listens there
        response = client.post("/admin/realtime/alertrecipient/", {
            "action": "send_test_email", "_selected_action": [recipient.pk]}, follow=True)
    assert response.status_code == 200 and b"ConnectionRefusedError" in response.content
    recipient.refresh_from_db()
    assert "ConnectionRefusedError" in recipient.last_error
