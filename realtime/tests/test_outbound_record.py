"""The sender's set-based recording (realtime.outbound._record_group): the answers that came back
together are written in a number of statements that does not grow with them, and exactly as the
one-by-one path (``_record_in_transaction``, the fallback) would write them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from realtime import outbound
from realtime.models import (
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from scoring.models import AlertEvent, AlertKind


def endpoint_make(name: str, **fields) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(name=name, url=f"http://127.0.0.1:9/{name}", **fields)
    outbound.endpoint_save(endpoint=endpoint)
    return endpoint


def delivery_make(endpoint: WebhookEndpoint, **fields) -> WebhookDelivery:
    uid = uuid.uuid4()
    return WebhookDelivery.objects.create(
        id=uuid.uuid4(), endpoint=endpoint, alert=None, msg_id="msg_" + uid.hex, kind="lead.stage_changed",
        body='{"id":"%s"}' % uid, status=fields.pop("status", DeliveryStatus.PENDING), next_attempt_at=timezone.now(),
        locked_until=timezone.now() + timedelta(seconds=40), created_at=timezone.now(), **fields,
    )


def job_of(delivery: WebhookDelivery, series_done: int = 0) -> outbound._Job:
    endpoint = delivery.endpoint
    return outbound._Job(delivery.pk, endpoint.pk, delivery.msg_id, endpoint.url, delivery.body.encode(),
                         [endpoint.secret], series_done)


def answer(code: int | None, *, outcome=None, retry_after=None, error=None) -> outbound.Result:
    if outcome is None:
        outcome = AttemptOutcome.SUCCESS if code and 200 <= code < 300 else AttemptOutcome.HTTP_ERROR
    if error is None:
        error = "" if outcome == AttemptOutcome.SUCCESS else f"HTTP {code}"
    return outbound.Result(outcome, code, 12, "ok" if code else "", error, retry_after, timezone.now())


@pytest.mark.django_db
@pytest.mark.parametrize("codes", [(200,), (200, 204)])
def test_recording_a_group_takes_the_same_statements_for_3_or_40_answers(codes):
    # given two endpoints, each with answers for n of its claimed deliveries (one or two 2xx codes)
    def statements(n: int) -> int:
        endpoints = [endpoint_make(f"ep-{n}-{i}") for i in range(2)]
        pairs = []
        for i in range(n):
            delivery = delivery_make(endpoints[i % 2])
            pairs.append((job_of(delivery), answer(codes[i % len(codes)])))
        # when they are recorded together
        with CaptureQueriesContext(connection) as captured:
            outbound._record(pairs)
        # then every one is recorded
        ids = [job.delivery_id for job, _ in pairs]
        assert WebhookDelivery.objects.filter(pk__in=ids, status=DeliveryStatus.SUCCEEDED, attempts=1,
                                              locked_until__isnull=True, delivered_at__isnull=False).count() == n
        assert DeliveryAttempt.objects.filter(delivery_id__in=ids, number=1).count() == n
        return len(captured.captured_queries)

    few, many = statements(3 * len(codes)), statements(40)
    # and the statements do not depend on how many: lock the endpoints, read the deliveries,
    # insert the attempts, one UPDATE per status code, one save per endpoint (+ the transaction's own)
    assert few == many
    transaction_statements = few - (1 + 1 + 1 + len(codes) + 2)
    assert 0 <= transaction_statements <= 2, few


def _world(tag: str):
    """Three endpoints and their claimed deliveries, and the answers that came back together."""
    flaky = endpoint_make(f"flaky-{tag}", consecutive_failures=1)
    gone = endpoint_make(f"gone-{tag}")
    tired = endpoint_make(f"tired-{tag}")
    d = {name: delivery_make(flaky) for name in ("retry_after", "timeout", "after_pause")}
    d.update({name: delivery_make(gone) for name in ("ok", "410", "after_410")})
    d["untouched"] = delivery_make(gone)  # pending, not in the group: cancelled by the 410
    d["last"] = delivery_make(tired, attempts=2)
    d["cancelled"] = delivery_make(tired, status=DeliveryStatus.CANCELLED)  # by an operator meanwhile
    pairs = [
        (job_of(d["retry_after"]), answer(503, retry_after="600")),
        (job_of(d["ok"]), answer(200)),
        (job_of(d["last"], series_done=2), answer(500)),
        (job_of(d["timeout"]), answer(None, outcome=AttemptOutcome.TIMEOUT, error="timed out: read")),
        (job_of(d["410"]), answer(410)),
        (job_of(d["after_pause"]), answer(201)),
        (job_of(d["after_410"]), answer(200)),
        (job_of(d["cancelled"]), answer(200)),
    ]
    return (flaky, gone, tired), d, pairs


def _snapshot(endpoints, deliveries, since):
    msg_ids = {delivery.msg_id: f"<{name}>" for name, delivery in deliveries.items()}

    def plain(text):
        for msg_id, name in msg_ids.items():
            text = text.replace(msg_id, name)
        return text

    def later(at):  # seconds after the recording started, rounded (no jitter: JITTER = 0)
        return None if at is None else round((at - since).total_seconds())

    shot = {"endpoints": [], "deliveries": {}, "attempts": {}, "paused": []}
    for endpoint in endpoints:
        endpoint.refresh_from_db()
        shot["endpoints"].append((endpoint.status, plain(endpoint.status_reason), endpoint.consecutive_failures,
                                  endpoint.last_success_at is not None, endpoint.last_failure_at is not None))
    for name, delivery in deliveries.items():
        delivery.refresh_from_db()
        shot["deliveries"][name] = (delivery.status, delivery.attempts, delivery.last_status_code,
                                    plain(delivery.last_error), delivery.locked_until is None,
                                    delivery.delivered_at is not None, later(delivery.next_attempt_at))
        shot["attempts"][name] = [
            (a.number, a.outcome, a.status_code, a.latency_ms, a.response_excerpt, a.error, a.retry_after_seconds,
             later(a.next_attempt_at))
            for a in DeliveryAttempt.objects.filter(delivery=delivery).order_by("number")
        ]
    for notice in AlertEvent.objects.filter(kind=AlertKind.ENDPOINT_PAUSED).order_by("created_at"):
        data = notice.payload["data"]
        if data["endpoint"]["id"] in [e.pk for e in endpoints]:
            shot["paused"].append((data["failures"], data["last_error"], notice.dispatched))
    return shot


@pytest.mark.django_db
def test_a_mixed_group_is_recorded_exactly_as_one_by_one(settings, monkeypatch):
    settings.TARGETGRID_WEBHOOK_PAUSE_AFTER = 3
    settings.TARGETGRID_WEBHOOK_MAX_ATTEMPTS = 3
    monkeypatch.setattr(outbound, "JITTER", 0.0)  # back-off delays without their random part
    # given the same answers twice: a 503 with Retry-After and a timeout that pauses an endpoint
    # already at one failure, then a 201 on it; a 200, a 410 (disables the endpoint, cancels its
    # pending rows) and a 200 after it; a 500 ending its series; a 200 for a row cancelled meanwhile
    endpoints_a, deliveries_a, pairs_a = _world("a")
    endpoints_b, deliveries_b, pairs_b = _world("b")
    one_by_one = []
    monkeypatch.setattr(outbound, "_record_one", lambda job, result: one_by_one.append(job))
    # when one group is recorded set-based (no fallback taken) ...
    since_a = timezone.now()
    outbound._record(pairs_a)
    assert one_by_one == []
    snapshot_a = _snapshot(endpoints_a, deliveries_a, since_a)
    # ... and the other one answer after the other, in the order the group path promises
    # (endpoints in pk order, each endpoint's answers as they arrived)
    monkeypatch.undo()
    settings.TARGETGRID_WEBHOOK_PAUSE_AFTER = 3
    settings.TARGETGRID_WEBHOOK_MAX_ATTEMPTS = 3
    monkeypatch.setattr(outbound, "JITTER", 0.0)
    since_b = timezone.now()
    for job, result in sorted(pairs_b, key=lambda pair: pair[0].endpoint_id):
        outbound._record_one(job, result)
    snapshot_b = _snapshot(endpoints_b, deliveries_b, since_b)
    # then both are the same, row for row
    assert snapshot_a == snapshot_b
    # and that is what the rules say
    flaky, gone, tired = snapshot_a["endpoints"]
    assert flaky[:3] == (EndpointStatus.PAUSED, "3 consecutive failures; last: timed out: read", 0)
    assert gone[:2] == (EndpointStatus.DISABLED, "the receiver answered 410 Gone (delivery <410>)")
    assert tired[:3] == (EndpointStatus.ACTIVE, "", 0)  # its last answer (the cancelled row's) a 200
    rows = snapshot_a["deliveries"]
    assert rows["retry_after"][:4] == (DeliveryStatus.PENDING, 1, 503, "HTTP 503") and rows["retry_after"][6] == 600
    assert rows["timeout"][:4] == (DeliveryStatus.PENDING, 1, None, "timed out: read") and rows["timeout"][6] == 5
    assert rows["after_pause"][:6] == (DeliveryStatus.SUCCEEDED, 1, 201, "", True, True)
    assert rows["ok"][:6] == (DeliveryStatus.SUCCEEDED, 1, 200, "", True, True)
    assert rows["410"][:5] == (DeliveryStatus.FAILED, 1, 410, "HTTP 410", True)
    for name in ("after_410", "untouched"):
        assert rows[name][:5] == (DeliveryStatus.CANCELLED, 0, None,
                                  "the receiver answered 410 Gone (delivery <410>)", True)
    assert rows["last"][:5] == (DeliveryStatus.FAILED, 3, 500, "HTTP 500", True)
    assert rows["cancelled"][:2] == (DeliveryStatus.CANCELLED, 0)
    attempts = snapshot_a["attempts"]
    assert attempts["retry_after"] == [(1, AttemptOutcome.HTTP_ERROR, 503, 12, "ok", "HTTP 503", 600, 600)]
    assert attempts["last"] == [(3, AttemptOutcome.HTTP_ERROR, 500, 12, "ok", "HTTP 500", None, None)]
    assert [a[:3] for a in attempts["after_410"]] == [(1, AttemptOutcome.SUCCESS, 200)]
    assert [a[:3] for a in attempts["cancelled"]] == [(1, AttemptOutcome.SUCCESS, 200)]
    assert attempts["untouched"] == []
    assert snapshot_a["paused"] == [(3, "timed out: read", False)]


@pytest.mark.django_db
def test_a_group_that_cannot_be_written_is_recorded_one_by_one(monkeypatch):
    # given a group whose set-based write fails (here: forced)
    endpoint = endpoint_make("ep")
    deliveries = [delivery_make(endpoint) for _ in range(3)]

    def broken(pairs):
        raise RuntimeError("boom")

    monkeypatch.setattr(outbound, "_record_group", broken)
    # when it is recorded
    outbound._record([(job_of(delivery), answer(200)) for delivery in deliveries])
    # then every answer is recorded on its own
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED, attempts=1).count() == 3
    assert DeliveryAttempt.objects.count() == 3
