"""API-key authentication (``Authorization: Bearer <key>``) and the default API permission."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)


def bearer_token(header: str) -> str | None:
    parts = (header or "").split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    api_key = ApiKey.objects.filter(key_hash=ApiKey.hash_key(raw_key), is_active=True).first()
    if api_key is not None:
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
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
    """An API key, or a logged-in staff session; writes by a session need the model permission."""

    message = "Authentication required: send 'Authorization: Bearer <api key>' or log in as staff."

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        required = getattr(view, "write_permission", None)
        if required and request.method not in permissions.SAFE_METHODS:
            if not user.has_perm(required):
                self.message = f"Your account may not do this (needs the {required!r} permission)."
                return False
        return True
