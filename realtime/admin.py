"""Admin of what leaves TargetGrid: webhook endpoints and their deliveries, e-mail recipients."""

from django.contrib import admin  # noqa: F401

from . import models  # noqa: F401

# --- Webhook endpoints and deliveries (realtime/outbound.py) ---


# --- E-mail alert recipients (realtime/mail.py) ---
