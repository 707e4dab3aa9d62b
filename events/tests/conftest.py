import uuid

import pytest


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters(settings):
    """Rate-limit counters live in the cache (Redis in the TEST_REDIS_URL run, where keys outlive a
    test and ids repeat across runs): every test counts under its own key prefix."""
    settings.RATELIMIT_CACHE_PREFIX = f"rl:test:{uuid.uuid4().hex}:"
