"""API-key authentication (``Authorization: Bearer <key>``) and the default API permission.

A verified key is remembered in the process for ``TARGETGRID_API_KEY_CACHE_SECONDS`` (10 s), so a
stream of requests does not pay a database read each (~15% of a single-event POST's CPU, measured
in bench/). Saving or deleting an ApiKey (the admin's revoke) clears the cache of the process that
did it at once; other processes refuse a revoked key within that many seconds. 0 turns it off.
"""

from __future__ import annotations

import threading
from time import monotonic
from datetime import timedelta

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)

_verified: dict[str, tuple[float, ApiKey]] = {}  # key hash -> (expires at, monotonic clock; key)
_verified_lock = threading.Lock()


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="targetgrid.api_key_cache_clear")
def api_key_cache_clear(**_kwargs) -> None:
    with _verified_lock:
        _verified.clear()


def bearer_token(header: str) -> str | None:
    parts = (header or "").split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    key_hash = ApiKey.hash_key(raw_key)
    ttl = settings.TARGETGRID_API_KEY_CACHE_SECONDS
    hit = _verified.get(key_hash)
    if hit is not None and hit[0] > monotonic():
        api_key = hit[1]
    else:
        api_key = ApiKey.objects.filter(key_hash=key_hash, is_active=True).first()
        with _verified_lock:
            if api_key is not None and ttl > 0:
                _verified[key_hash] = (monotonic() + ttl, api_key)
            else:
                _verified.pop(key_hash, None)
    if api_key is not None:
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            api_key.last_used_at = now
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyPrincipal:
    """The request.user of an API-key request."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.pk = None
        self.username = f"api-key:{api_key.name}"

    def __str__(self) -> str:
        return self.username

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm, obj=None) -> bool:
        return True


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin1")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        api_key = api_key_authenticate(token)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class IsApiKeyOrStaff(permissions.BasePermission):
    """An API key, or a logged-in staff session; writes by a session need the model permission
    the view declares as ``write_permission`` (one codename, or a dict per HTTP method)."""

    message = "Authentication required: send 'Authorization: Bearer <api key>' or log in as staff."

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        required = getattr(view, "write_permission", None)
        if isinstance(required, dict):  # per method: {"PUT": "app.change_x", "DELETE": "app.delete_x"}
            required = required.get(request.method)
        if required and request.method not in permissions.SAFE_METHODS:
            if not user.has_perm(required):
                self.message = f"Your account may not do this (needs the {required!r} permission)."
                return False
        return True
