"""Test settings: the embedded default (a SQLite file under var/test, inline scoring) unless TEST_DATABASE_URL /
TEST_REDIS_URL point the suite at a real MariaDB/MySQL or PostgreSQL and Redis."""

import os

os.environ.setdefault("TARGETGRID_QUEUE", "inline")
# Tests flush tables between cases (no signals): remembered rule types would outlive their rows.
# The cache itself is tested with it switched on (scoring/tests/test_selectors.py).
os.environ.setdefault("TARGETGRID_RULES_CACHE_SECONDS", "0")
# Per checkout (var/ is git-ignored): two clones on one machine must not share a test database.
os.environ.setdefault(
    "TARGETGRID_DATA_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var", "test")
)
for name in ("DATABASE_URL", "REDIS_URL"):
    os.environ.pop(name, None)
if os.environ.get("TEST_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
if os.environ.get("TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]

from .settings import *  # noqa: E402,F403
from .settings import DATABASES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    # <name>_test rather than Django's test_<name>: on a shared server every engineer's databases
    # keep their own prefix (e.g. tg_bench_t -> tg_bench_t_test). The collation docker-compose.yml
    # sets: case-, accent- and width-insensitive, so the binary columns (config/fields.py) are tested.
    DATABASES["default"]["TEST"] = {
        "CHARSET": "utf8mb4",
        "COLLATION": "utf8mb4_unicode_ci",
        "NAME": f"{DATABASES['default']['NAME']}_test",
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["TEST"] = {"NAME": f"{DATABASES['default']['NAME']}_test"}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, as in the embedded default (WAL, busy timeout), not the shared-cache in-memory
    # database, whose table locks fail concurrent tests at once instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["TARGETGRID_DATA_DIR"], "test.sqlite3")}
