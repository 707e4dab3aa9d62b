"""Channels group names (one place)."""

EVENTS = "events"
LEADERBOARD = "leaderboard"


def lead_group(lead_id) -> str:
    return f"lead.{lead_id}"


def import_group(import_id) -> str:
    return f"import.{import_id}"
