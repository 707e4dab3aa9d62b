"""Rate limits for every ingest endpoint (django-ratelimit, fixed windows in the Django cache).

Keys: the API key, webhook source or Segment write key that authenticated the request; the client
IP for requests that did not authenticate. Rates come from settings (``TARGETGRID_RATE_*``), read
per request so they can be changed in tests and by configuration. Over the limit: 429 with
``Retry-After`` (seconds until the window resets) and nothing stored.

The counters live in the cache (Redis in production). When the cache cannot be reached the limiter
fails open: the request goes on (its events are stored; they are the source of truth) and a warning
is logged at most once per ``OUTAGE_LOG_SECONDS`` per process.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import JsonResponse
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled

from config.outage import OutageLog


logger = logging.getLogger(__name__)

OUTAGE_LOG_SECONDS = 60
_outage = OutageLog(logger, seconds=OUTAGE_LOG_SECONDS)


def _cache_unavailable(exc: Exception) -> None:
    _outage.warning("rate limiting is off: the cache is unreachable (%s: %s); requests are let through "
                    "(logged at most once per %d s)", type(exc).__name__, exc, OUTAGE_LOG_SECONDS)


def retry_after(request, *, group: str, key: str, rate: str) -> int | None:
    """Count this request; the seconds to wait if it is over ``rate``, else None (also when the
    cache is down: fail open)."""
    try:
        usage = get_usage(request, group=f"targetgrid.{group}", key=lambda _group, _request: key, rate=rate,
                          increment=True)
    except Exception as exc:  # redis.ConnectionError/TimeoutError, OSError, ...: never fail ingest on it
        _cache_unavailable(exc)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, int(usage["time_left"]))


def client_ip_key(request) -> str:
    from django_ratelimit.core import _SIMPLE_KEYS  # the library's IP (and IPv6 /64) logic

    return "ip:" + _SIMPLE_KEYS["ip"](request)


def too_many_requests(seconds: int, *, what: str) -> JsonResponse:
    response = JsonResponse(
        {"detail": f"Rate limit exceeded for this {what}; retry in {seconds} seconds."}, status=429
    )
    response["Retry-After"] = str(seconds)
    return response


def check_or_429(request, *, group: str, key: str | None, rate_setting: str, what: str) -> JsonResponse | None:
    """For plain Django views: None when the request may proceed, else the 429 response.

    ``key`` None means the request is not authenticated: it is limited per IP at the anonymous rate.
    """
    if key is None:
        key, rate, what = client_ip_key(request), settings.TARGETGRID_RATE_ANONYMOUS, "client address"
    else:
        rate = getattr(settings, rate_setting)
    seconds = retry_after(request, group=group, key=key, rate=rate)
    return too_many_requests(seconds, what=what) if seconds else None


class RateLimitedMixin:
    """For DRF views: limit after authentication, per API key (or staff user, or IP)."""

    ratelimit_group = "ingest"
    ratelimit_rate_setting = "TARGETGRID_RATE_INGEST"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        from .models import ApiKey

        if isinstance(request.auth, ApiKey):
            key, rate, what = f"api-key:{request.auth.pk}", getattr(settings, self.ratelimit_rate_setting), "API key"
        elif request.user and request.user.is_authenticated:
            key, rate, what = f"user:{request.user.pk}", getattr(settings, self.ratelimit_rate_setting), "user"
        else:  # unreachable behind IsApiKeyOrStaff; kept so a public view is never unlimited
            key, rate, what = client_ip_key(request), settings.TARGETGRID_RATE_ANONYMOUS, "client address"
        seconds = retry_after(request, group=self.ratelimit_group, key=key, rate=rate)
        if seconds:
            raise Throttled(wait=seconds, detail=f"Rate limit exceeded for this {what}; retry in {seconds} seconds.")
