"""E-mail alert digests through Django's mail framework. TO BE BUILT (helper B)."""

from __future__ import annotations


def digests_wake() -> None:
    """Schedule the digests of recipients with new alerts (at most one e-mail per window)."""
