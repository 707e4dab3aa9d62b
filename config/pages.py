"""Shared pieces of the server-rendered operator pages (no domain logic)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.template import TemplateDoesNotExist
from django.template.loader import get_template


def staff_required(view):
    """Pages are for staff: anonymous -> the login page (with ?next=), signed-in non-staff -> 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("The operator console is for staff accounts.")
        return view(request, *args, **kwargs)

    return wrapper


def permission_required(perm: str):
    """Inside a staff page: a write needs the model permission (the Viewers group has none)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.has_perm(perm):
                raise PermissionDenied(f"Your account may not do this (needs the {perm!r} permission).")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def optional_template(name: str) -> str | None:
    """The template's name when it exists, else None: lets a page include a part another branch ships."""
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return None
    return name
