import pytest


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters():
    """Rate-limit counters live in the cache (Redis in the TEST_REDIS_URL run, where keys outlive a
    test); every test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
