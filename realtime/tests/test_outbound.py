"""Outbound webhooks against a real HTTP receiver (realtime/tests/receiver.py): fan-out, Standard
Webhooks signatures checked with the official ``standardwebhooks`` package, retries with back-off,
Retry-After, 410, pause and resume, a hanging receiver, expired claims, idempotent dispatch."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config import transport
from conftest import event_payload
from events.services import event_ingest
from realtime import alerts as alerts_module
from realtime import outbound
from realtime.models import (
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from realtime.tests.receiver import Answer, Receiver
from scoring.models import AlertEvent, AlertKind, ScoringRule, Stage, StageSettings


@pytest.fixture
def receivers():
    started = []

    def start(*script, **kwargs):
        receiver = Receiver(*script, **kwargs)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def endpoint_make(url, **fields) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(name=fields.pop("name", f"ep-{uuid.uuid4().hex[:6]}"), url=url, **fields)
    outbound.endpoint_save(endpoint=endpoint)
    return endpoint


def alert_make(kind=AlertKind.STAGE_CHANGED, *, from_stage="Warm", to_stage="MQL", stage=None, lead=None) -> AlertEvent:
    uid = uuid.uuid4()
    data = {"lead": {"id": "x", "stage": stage or to_stage}}
    if kind == AlertKind.STAGE_CHANGED:
        data.update(from_stage=from_stage, to_stage=to_stage, direction="up")
    elif kind == AlertKind.SCORE_CROSSED:
        data.update(threshold=150, direction="up")
    payload = {"id": str(uid), "type": str(kind), "timestamp": "2026-11-29T21:30:00Z", "data": data}
    return AlertEvent.objects.create(uid=uid, kind=kind, lead=lead, stage=stage if stage is not None else to_stage,
                                     payload=payload, created_at=timezone.now())


def verified(endpoint_secret: str, received) -> dict:
    """The payload, verified by the official Standard Webhooks implementation (raises if not)."""
    return Webhook(endpoint_secret).verify(received.body, received.headers)


def make_due(*deliveries) -> None:
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(next_attempt_at=timezone.now())


# --- Fan-out ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_fan_out_matches_kinds_and_stages_exactly_and_reads_endpoints_once(django_assert_num_queries):
    # given endpoints with different subscriptions and statuses
    url = "http://127.0.0.1:19199/none"
    everything = endpoint_make(url, name="default kinds")
    mql = endpoint_make(url, name="mql changes", event_kinds=["lead.stage_changed"], stages=["MQL"])
    lower = endpoint_make(url, name="lowercase mql", stages=["mql"])
    paused = endpoint_make(url, name="paused", status=EndpointStatus.PAUSED)
    disabled = endpoint_make(url, name="disabled", status=EndpointStatus.DISABLED)
    ops = endpoint_make(url, name="ops", event_kinds=["endpoint.paused"])
    up = alert_make(from_stage="Warm", to_stage="MQL")
    down = alert_make(from_stage="MQL", to_stage="Warm")
    cold = alert_make(from_stage="Cold", to_stage="Warm")
    crossed = alert_make(AlertKind.SCORE_CROSSED, stage="MQL")
    notice = alert_make(AlertKind.ENDPOINT_PAUSED, stage="")
    # when they are fanned out: one query for the endpoints, one insert
    with django_assert_num_queries(2):
        created = outbound.deliveries_create(alerts=[up, down, cold, crossed, notice])
    # then each endpoint got exactly the alerts it asked for
    got = {(d.endpoint_id, d.alert_id) for d in WebhookDelivery.objects.all()}
    expected = {
        *((everything.pk, a.pk) for a in (up, down, cold, crossed)),
        (mql.pk, up.pk), (mql.pk, down.pk),  # into MQL and out of MQL, not the score crossing
        *((paused.pk, a.pk) for a in (up, down, cold, crossed)),  # paused endpoints accumulate
        (ops.pk, notice.pk),
    }
    assert got == expected and created == len(expected)
    assert not WebhookDelivery.objects.filter(endpoint__in=[lower, disabled]).exists()
    # and the body is the alert's payload, frozen, with a stable id per (alert, endpoint)
    delivery = WebhookDelivery.objects.get(endpoint=mql, alert=down)
    assert json.loads(delivery.body) == down.payload
    assert delivery.msg_id == outbound.msg_id_of(alert_uid=down.uid, endpoint_id=mql.pk)
    assert delivery.msg_id != WebhookDelivery.objects.get(endpoint=everything, alert=down).msg_id


@pytest.mark.django_db
def test_fanning_out_the_same_alerts_twice_creates_nothing_twice():
    endpoint = endpoint_make("http://127.0.0.1:19199/none")
    alert = alert_make()
    assert outbound.deliveries_create(alerts=[alert]) == 1
    # when the same alert is dispatched again (a sweep after a lost commit acknowledgement)
    outbound.deliveries_create(alerts=[alert])
    AlertEvent.objects.filter(pk=alert.pk).update(dispatched=False)
    alerts_module.alerts_dispatch()
    # then there is still one delivery
    assert WebhookDelivery.objects.filter(endpoint=endpoint, alert=alert).count() == 1
    assert AlertEvent.objects.get(pk=alert.pk).dispatched


# --- End to end: scoring -> alert -> signed delivery --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_lead_crossing_mql_sends_exactly_one_signed_delivery_and_again_after_a_drop(receivers, publish):
    # given the default stages, a rule that takes points away, and an endpoint for changes into or
    # out of MQL
    if not Stage.objects.exists():
        for position, (name, threshold) in enumerate([("Cold", None), ("Warm", 40), ("MQL", 100), ("SQL", 300)]):
            Stage.objects.create(name=name, position=position * 10, min_score=threshold)
        StageSettings.objects.update_or_create(pk=1, defaults={"version": 2, "score_thresholds": []})
    ScoringRule.objects.create(event_type="UNSUBSCRIBE", points=-60, description="test")
    publish()
    receiver = receivers()
    endpoint = endpoint_make(receiver.url, event_kinds=["lead.stage_changed"], stages=["MQL"])
    # when a lead crosses MQL (inline queue: scoring, fan-out and the sender run after commit)
    event_ingest(items=[event_payload("p-1", event_type="PURCHASE", minutes=0, email="hot@example.com")], source="test")
    # then the receiver got exactly one delivery, signed, verified by the official package
    assert len(receiver.received) == 1
    body = verified(endpoint.secret, receiver.received[0])
    assert (body["type"], body["data"]["from_stage"], body["data"]["to_stage"]) == ("lead.stage_changed", "Cold", "MQL")
    assert receiver.received[0].headers["user-agent"] == "TargetGrid-Webhooks/1"
    assert receiver.received[0].headers["content-type"] == "application/json"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert receiver.received[0].headers["webhook-id"] == delivery.msg_id
    # when it drops below MQL and crosses again
    event_ingest(items=[event_payload("u-1", event_type="UNSUBSCRIBE", minutes=1, email="hot@example.com")], source="test")
    event_ingest(items=[event_payload("p-2", event_type="PURCHASE", minutes=2, email="hot@example.com")], source="test")
    # then the drop out of MQL and the new crossing were delivered too, each once
    stages = [(p["data"]["from_stage"], p["data"]["to_stage"]) for p in (verified(endpoint.secret, r) for r in receiver.received)]
    assert stages == [("Cold", "MQL"), ("MQL", "Warm"), ("Warm", "MQL")]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 3
    # and a second dispatch of the same alerts sends nothing more
    AlertEvent.objects.update(dispatched=False)
    alerts_module.alerts_dispatch()
    assert len(receiver.received) == 3 and WebhookDelivery.objects.count() == 3


# --- Signatures -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_during_a_rotation_both_secrets_verify_and_after_the_overlap_only_the_new_one(receivers):
    receiver = receivers()
    endpoint = endpoint_make(receiver.url)
    old = endpoint.secret
    new = outbound.endpoint_rotate_secret(endpoint_id=endpoint.pk)
    assert new.startswith("whsec_") and new != old
    first, second = alert_make(), alert_make()
    outbound.deliveries_create(alerts=[first])
    # when a delivery is sent during the overlap
    outbound.deliveries_send()
    # then it carries two v1 signatures, and each secret alone verifies it
    received = receiver.received[0]
    assert len(received.headers["webhook-signature"].split()) == 2
    assert verified(old, received) == verified(new, received) == first.payload
    # when the overlap is over
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    outbound.deliveries_create(alerts=[second])
    outbound.deliveries_send()
    # then only the new secret signs
    received = receiver.received[1]
    assert len(received.headers["webhook-signature"].split()) == 1
    assert verified(new, received) == second.payload
    with pytest.raises(WebhookVerificationError):
        verified(old, received)


def test_generated_secrets_are_32_random_bytes():
    secret = outbound.secret_generate()
    assert secret.startswith("whsec_")
    assert len(outbound.secret_key_bytes(secret)) == 32
    assert secret != outbound.secret_generate()


# --- Retries ------------------------------------------------------------------------------------


def test_retry_delays_grow_within_their_jitter_bounds(settings):
    settings.TARGETGRID_WEBHOOK_RETRY_BASE_SECONDS = 5
    settings.TARGETGRID_WEBHOOK_RETRY_FACTOR = 4
    settings.TARGETGRID_WEBHOOK_RETRY_MAX_SECONDS = 6 * 3600
    rng = random.Random(7)
    for number in range(1, 8):
        nominal = min(5 * 4 ** (number - 1), 6 * 3600)
        draws = [outbound.retry_delay(number, rng=rng) for _ in range(500)]
        assert all(min(nominal * 0.8, 6 * 3600) <= d <= min(nominal * 1.2, 6 * 3600) for d in draws)
        if nominal * 1.2 < 6 * 3600:
            assert max(draws) - min(draws) > nominal * 0.2  # the jitter is real, not a constant
        if number > 1 and nominal < 6 * 3600:
            previous_nominal = 5 * 4 ** (number - 2)
            assert min(draws) > previous_nominal * 1.2  # the slowest draw before < the fastest now


def test_retry_after_is_read_as_seconds_or_http_date_and_bounded(settings):
    settings.TARGETGRID_WEBHOOK_RETRY_AFTER_MAX_SECONDS = 86400
    now = timezone.now().replace(microsecond=0)
    assert outbound.retry_after_parse("120", now=now) == 120
    assert outbound.retry_after_parse(format_datetime(now + timedelta(hours=1), usegmt=True), now=now) == 3600
    assert outbound.retry_after_parse(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0
    assert outbound.retry_after_parse("999999999999999", now=now) == 86400
    for junk in ("", None, "soon", "-5", "１２", "Wed, 99 Foo 2026"):
        assert outbound.retry_after_parse(junk, now=now) is None


@pytest.mark.django_db
def test_500_500_500_then_200_makes_four_attempts_with_growing_delays(receivers):
    receiver = receivers(Answer(500, body=b"boom"), Answer(500), Answer(502), default=Answer(200))
    endpoint = endpoint_make(receiver.url)
    outbound.deliveries_create(alerts=[alert_make()])
    delivery = WebhookDelivery.objects.get()
    # when the sender runs each time the delivery is due (made due at once instead of waiting)
    for _ in range(4):
        assert outbound.deliveries_send() == 1
        assert outbound.deliveries_send() == 0  # not due again before its back-off
        make_due(delivery)
    # then four attempts, the last delivered, one webhook-id throughout
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 4 and delivery.last_status_code == 200
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.msg_id}
    rows = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.outcome, a.status_code) for a in rows] == [
        (1, AttemptOutcome.HTTP_ERROR, 500), (2, AttemptOutcome.HTTP_ERROR, 500), (3, AttemptOutcome.HTTP_ERROR, 502),
        (4, AttemptOutcome.SUCCESS, 200),
    ]
    assert rows[0].response_excerpt == "boom" and rows[-1].next_attempt_at is None
    # and the delays scheduled after each failure grow: 5 s, 20 s, 80 s, each within its jitter
    delays = [(a.next_attempt_at - a.started_at).total_seconds() for a in rows[:3]]
    for delay, nominal in zip(delays, (5, 20, 80)):
        assert nominal * 0.8 <= delay <= nominal * 1.2 + 2
    assert delays[0] < delays[1] < delays[2]
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0 and endpoint.last_success_at and endpoint.last_failure_at


@pytest.mark.django_db
def test_retry_after_is_honoured_when_later_than_the_back_off(receivers):
    later = format_datetime(timezone.now() + timedelta(hours=2), usegmt=True)
    receiver = receivers(Answer(503, headers={"Retry-After": "600"}), Answer(429, headers={"Retry-After": later}),
                         Answer(503, headers={"Retry-After": "1"}))
    endpoint_make(receiver.url)
    outbound.deliveries_create(alerts=[alert_make()])
    delivery = WebhookDelivery.objects.get()
    for _ in range(3):
        outbound.deliveries_send()
        make_due(delivery)
    rows = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    waits = [(a.next_attempt_at - a.started_at).total_seconds() for a in rows]
    # then the next attempt waits for the receiver's Retry-After (seconds, then an HTTP-date) ...
    assert rows[0].retry_after_seconds == 600 and 600 <= waits[0] < 602
    assert 7190 <= rows[1].retry_after_seconds <= 7200 and waits[1] >= 7190
    # ... but never less than our own back-off (attempt 3: 80 s nominal, Retry-After 1 s)
    assert rows[2].retry_after_seconds == 1 and waits[2] >= 80 * 0.8


@pytest.mark.django_db
def test_giving_up_after_max_attempts_and_a_resend_starts_a_new_series(receivers, settings):
    settings.TARGETGRID_WEBHOOK_MAX_ATTEMPTS = 2
    receiver = receivers(Answer(500), Answer(500), Answer(500), default=Answer(204))
    endpoint_make(receiver.url)
    outbound.deliveries_create(alerts=[alert_make()])
    delivery = WebhookDelivery.objects.get()
    outbound.deliveries_send()
    make_due(delivery)
    outbound.deliveries_send()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2
    assert outbound.deliveries_send() == 0
    # when an operator resends it: pending, due now, attempts kept, a new series of 2
    assert outbound.deliveries_resend(delivery_ids=[delivery.pk]) == 1
    outbound.deliveries_send()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 3
    make_due(delivery)
    outbound.deliveries_send()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 4
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.msg_id}


@pytest.mark.django_db
def test_redirects_are_not_followed_and_count_as_failures(receivers):
    target = receivers()
    receiver = receivers(Answer(307, headers={"Location": target.url}))
    endpoint_make(receiver.url)
    outbound.deliveries_create(alerts=[alert_make()])
    outbound.deliveries_send()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code == 307
    assert "redirects are not followed" in delivery.last_error
    assert target.received == []


# --- 410, pause, resume -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_410_disables_the_endpoint_and_cancels_its_pending_deliveries(receivers, settings):
    settings.TARGETGRID_WEBHOOK_ENDPOINT_CONCURRENCY = 1
    receiver = receivers(Answer(410, body=b"gone"))
    other = receivers()
    endpoint = endpoint_make(receiver.url)
    bystander = endpoint_make(other.url)
    outbound.deliveries_create(alerts=[alert_make() for _ in range(3)])
    outbound.deliveries_send()
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.DISABLED and "410" in endpoint.status_reason
    statuses = sorted(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("status", flat=True))
    assert statuses == [DeliveryStatus.CANCELLED, DeliveryStatus.CANCELLED, DeliveryStatus.FAILED]
    assert len(receiver.received) == 1
    # and another endpoint is untouched
    assert len(other.received) == 3
    assert set(WebhookDelivery.objects.filter(endpoint=bystander).values_list("status", flat=True)) == {"succeeded"}
    # and a disabled endpoint gets no new deliveries
    outbound.deliveries_create(alerts=[alert_make()])
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 3


@pytest.mark.django_db
def test_consecutive_failures_pause_the_endpoint_tell_the_operator_and_resume_sends_the_rest(
    receivers, settings, django_capture_on_commit_callbacks
):
    settings.TARGETGRID_WEBHOOK_PAUSE_AFTER = 3
    settings.TARGETGRID_WEBHOOK_ENDPOINT_CONCURRENCY = 1
    receiver = receivers(Answer(500), Answer(500), Answer(500, body=b"still down"), default=Answer(200))
    endpoint = endpoint_make(receiver.url, name="crm")
    outbound.deliveries_create(alerts=[alert_make() for _ in range(5)])
    heard = []
    transport.listen("alerts.created", heard.append)
    try:
        # when three attempts in a row fail (across deliveries)
        with django_capture_on_commit_callbacks(execute=True):
            outbound.deliveries_send()
    finally:
        transport._listeners["alerts.created"].remove(heard.append)
    # then the endpoint is paused and the other deliveries wait
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.PAUSED and endpoint.consecutive_failures == 3
    assert len(receiver.received) == 3
    assert WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).count() == 5
    # and the operator is told: an endpoint.paused alert, announced after commit
    notice = AlertEvent.objects.get(kind=AlertKind.ENDPOINT_PAUSED)
    assert notice.lead is None
    assert notice.payload["data"]["endpoint"] == {"id": endpoint.pk, "name": "crm", "url": receiver.url}
    assert notice.payload["data"]["failures"] == 3 and notice.payload["data"]["last_error"] == "HTTP 500"
    assert set(notice.payload) == {"id", "type", "timestamp", "data"}
    assert [p["type"] for batch in heard for p in batch] == ["endpoint.paused"]
    # and while paused nothing is sent, even when due, but new alerts keep accumulating
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    outbound.deliveries_create(alerts=[alert_make()])
    assert outbound.deliveries_send() == 0
    # when the operator resumes it
    with django_capture_on_commit_callbacks(execute=False):
        outbound.endpoint_resume(endpoint_ids=[endpoint.pk])
    endpoint.refresh_from_db()
    assert endpoint.status == EndpointStatus.ACTIVE and endpoint.consecutive_failures == 0
    outbound.deliveries_send()
    # then every pending delivery is sent, once each (the three retried ones with their own ids)
    assert set(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("status", flat=True)) == {"succeeded"}
    ids = [r.headers["webhook-id"] for r in receiver.received[3:]]
    assert len(ids) == len(set(ids)) == 6


# --- Concurrency and crashes --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_hanging_receiver_does_not_hold_up_a_fast_one(receivers, settings):
    settings.TARGETGRID_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.TARGETGRID_WEBHOOK_ENDPOINT_CONCURRENCY = 2
    slow = receivers(default=Answer(200, hang=60))
    fast = receivers()
    slow_endpoint = endpoint_make(slow.url, name="slow")
    # given a backlog for the hanging receiver, older than the fast receiver's deliveries
    outbound.deliveries_create(alerts=[alert_make() for _ in range(70)])
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    fast_endpoint = endpoint_make(fast.url, name="fast")
    outbound.deliveries_create(alerts=[alert_make() for _ in range(5)])
    # when one sender run handles both
    outbound.deliveries_send(max_seconds=0.5)
    # then the fast receiver got all five, each attempt started before any hanging one ended
    assert len(fast.received) == 5
    assert set(WebhookDelivery.objects.filter(endpoint=fast_endpoint).values_list("status", flat=True)) == {"succeeded"}
    slow_attempts = list(DeliveryAttempt.objects.filter(delivery__endpoint=slow_endpoint))
    first_slow_end = min(a.started_at + timedelta(milliseconds=a.latency_ms) for a in slow_attempts)
    fast_starts = DeliveryAttempt.objects.filter(delivery__endpoint=fast_endpoint).values_list("started_at", flat=True)
    assert len(fast_starts) == 5 and max(fast_starts) < first_slow_end
    # and the hanging ones timed out (at most the per-endpoint cap at a time) and wait for a retry
    assert 1 <= len(slow_attempts) <= 2
    assert {a.outcome for a in slow_attempts} == {AttemptOutcome.TIMEOUT}
    assert all(a.next_attempt_at for a in slow_attempts)
    assert not WebhookDelivery.objects.filter(locked_until__isnull=False).exists()


@pytest.mark.django_db
def test_a_claim_whose_sender_died_is_sent_again_with_the_same_id_after_it_runs_out(receivers):
    receiver = receivers()
    endpoint_make(receiver.url)
    outbound.deliveries_create(alerts=[alert_make()])
    delivery = WebhookDelivery.objects.get()
    # given a sender claimed it and died mid-request (its claim is still running)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() + timedelta(seconds=40))
    # then no other sender takes it while the claim lasts
    assert outbound.deliveries_send() == 0 and receiver.received == []
    # when the claim has run out
    WebhookDelivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert outbound.deliveries_send() == 1
    # then it is sent, with the same webhook-id (receivers dedupe on it), and the claim is cleared
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.msg_id]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.locked_until is None


@pytest.mark.django_db
def test_an_unreachable_receiver_is_a_connection_failure_not_a_crash(settings):
    endpoint_make("http://127.0.0.1:19198/nobody-listens")
    outbound.deliveries_create(alerts=[alert_make()])
    outbound.deliveries_send()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.outcome == AttemptOutcome.CONNECTION and attempt.error and attempt.next_attempt_at


@pytest.mark.django_db
def test_a_long_or_binary_answer_is_kept_as_a_bounded_decoded_excerpt(receivers):
    receiver = receivers(Answer(500, body=b"\x00\xff" + "é".encode() * 5000))
    endpoint_make(receiver.url)
    outbound.deliveries_create(alerts=[alert_make()])
    outbound.deliveries_send()
    attempt = DeliveryAttempt.objects.get()
    assert len(attempt.response_excerpt) == 1000 and "\x00" not in attempt.response_excerpt
    assert attempt.response_excerpt.endswith("é")


def test_the_sender_runs_on_its_own_queue(settings):
    from celery import current_app

    route = current_app.amqp.router.route({}, "realtime.deliveries_send")
    assert route["queue"].name == "outbound"
    assert current_app.amqp.router.route({}, "realtime.alerts_dispatch")["queue"].name == "realtime"


def test_wake_ups_while_a_sender_runs_make_it_look_once_more_not_start_another(monkeypatch):
    import threading

    runs, started, release = [], threading.Event(), threading.Event()

    def fake_send():
        runs.append(threading.get_ident())
        started.set()
        release.wait(5)

    monkeypatch.setattr(outbound, "deliveries_send", fake_send)
    first = threading.Thread(target=outbound.deliveries_send_single_flight)
    first.start()
    assert started.wait(5)
    # when three more wake-ups arrive while it runs
    for _ in range(3):
        outbound.deliveries_send_single_flight()  # returns at once
    release.set()
    first.join(5)
    # then the running sender looked exactly once more, in its own thread
    assert len(runs) == 2 and set(runs) == {first.ident}


@pytest.mark.django_db
def test_query_count_of_fan_out_does_not_grow_with_alerts(django_assert_num_queries):
    endpoint_make("http://127.0.0.1:19199/none")
    endpoint_make("http://127.0.0.1:19199/none2", stages=["MQL"])
    many = [alert_make() for _ in range(50)]
    with django_assert_num_queries(2):
        assert outbound.deliveries_create(alerts=many) == 100


@pytest.mark.django_db
def test_the_sweep_wakes_the_sender_only_when_something_is_due(monkeypatch):
    published = []
    monkeypatch.setattr(transport, "publish", lambda name, *a, **k: published.append(name) or True)
    # nothing at all, a paused endpoint's due row, a future retry: no wake-up
    outbound.sender_wake()
    paused = endpoint_make("http://127.0.0.1:19199/p", status=EndpointStatus.PAUSED)
    outbound.deliveries_create(alerts=[alert_make()])
    outbound.sender_wake()
    WebhookEndpoint.objects.filter(pk=paused.pk).update(status=EndpointStatus.ACTIVE)
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() + timedelta(minutes=1))
    outbound.sender_wake()
    assert published == []
    # a due row of an active endpoint: one wake-up of the task on the outbound queue
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    outbound.sender_wake()
    assert published == ["realtime.deliveries_send"]
    # and in the embedded mode that task runs in a thread of its own
    assert transport.task_spec("realtime.deliveries_send").long_running


@pytest.mark.django_db
def test_a_malformed_stored_secret_is_a_visible_failed_attempt(receivers):
    receiver = receivers()
    endpoint = endpoint_make(receiver.url)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret="whsec_???")
    outbound.deliveries_create(alerts=[alert_make()])
    outbound.deliveries_send()
    attempt = DeliveryAttempt.objects.get()
    assert "cannot sign" in attempt.error and attempt.next_attempt_at and receiver.received == []


@pytest.mark.django_db
def test_the_sender_schedules_its_next_wake_up_for_the_earliest_due_row_once(monkeypatch, settings):
    published = []
    monkeypatch.setattr(transport, "can_defer", lambda: True)
    monkeypatch.setattr(transport, "publish", lambda name, *a, **k: published.append((name, k.get("countdown"))) or True)
    monkeypatch.setattr(outbound, "_wake_scheduled_at", 0.0)
    endpoint_make("http://127.0.0.1:19199/none")
    outbound.deliveries_create(alerts=[alert_make(), alert_make()])
    now = timezone.now()
    first, second = WebhookDelivery.objects.order_by("id")
    # a retry due in 30 s, and a row claimed by a sender that died, its claim running out in 90 s
    WebhookDelivery.objects.filter(pk=first.pk).update(next_attempt_at=now + timedelta(seconds=30))
    WebhookDelivery.objects.filter(pk=second.pk).update(next_attempt_at=now - timedelta(seconds=5),
                                                        locked_until=now + timedelta(seconds=90))
    outbound.deliveries_send()
    outbound.deliveries_send()  # a second run does not schedule a second wake-up for the same time
    assert len(published) == 1 and published[0][0] == "realtime.deliveries_send"
    assert 25 <= published[0][1] <= 31
    # with only the claimed row left, the wake-up is when its claim runs out
    WebhookDelivery.objects.filter(pk=first.pk).update(status=DeliveryStatus.SUCCEEDED)
    monkeypatch.setattr(outbound, "_wake_scheduled_at", 0.0)
    outbound.deliveries_send()
    assert 85 <= published[-1][1] <= 91
    # beyond TARGETGRID_WEBHOOK_WAKE_MAX_SECONDS the sweep finds it instead
    settings.TARGETGRID_WEBHOOK_WAKE_MAX_SECONDS = 60
    monkeypatch.setattr(outbound, "_wake_scheduled_at", 0.0)
    outbound.deliveries_send()
    assert len(published) == 2
