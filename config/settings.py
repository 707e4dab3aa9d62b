"""TargetGrid settings.

Everything comes from environment variables with an embedded default that works on a laptop:

* unset ``DATABASE_URL``  -> SQLite file under ``TARGETGRID_DATA_DIR`` (WAL, IMMEDIATE transactions)
* unset ``REDIS_URL``     -> in-process queue, in-memory channel layer, local-memory cache
* ``REDIS_URL`` set       -> Celery broker, cache and channels-redis on it
* ``TARGETGRID_ENV=production`` -> refuses to start with an unsafe ``SECRET_KEY`` or ``DEBUG``
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from kombu import Queue
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


TARGETGRID_ENV = env("TARGETGRID_ENV", "development")
PRODUCTION = TARGETGRID_ENV == "production"
DATA_DIR = Path(env("TARGETGRID_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

_INSECURE_PREFIX = "django-insecure"


def _secret_key() -> str:
    key = env("SECRET_KEY")
    if PRODUCTION:
        if not key or key.startswith(_INSECURE_PREFIX) or len(key) < 50 or len(set(key)) < 5:
            raise ImproperlyConfigured(
                "TARGETGRID_ENV=production needs SECRET_KEY set to a random string of at least 50 "
                "characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(64))')."
            )
        return key
    if key:
        return key
    # Embedded default: one random key per data directory, kept across restarts.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("TARGETGRID_ENV=production refuses DEBUG=1: unset DEBUG or set DEBUG=0.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("TARGETGRID_ENV=production needs ALLOWED_HOSTS (comma-separated host names).")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "corsheaders",
    "channels",
    "import_export",
    "django_ratelimit",
    "leads",
    "events",
    "scoring",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Under /api/, /webhooks/, /v1/: 413 JSON for oversized bodies, JSON 5xx (503 + Retry-After when
    # the database is unreachable) for any error a view did not answer itself.
    "config.middleware.ApiErrorMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

DATABASE_URL = env("DATABASE_URL")


SQLITE_OPTIONS = {
    # WAL + IMMEDIATE: concurrent writers queue on the write lock instead of failing
    # with "database is locked" (see shared/MEASURED.md).
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def database_config(url: str | None) -> dict:
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "targetgrid.sqlite3"),
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    config = dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # sqlite:///path (a process a test or the bench starts on a given file): the same options
        # as the embedded default, else a second writer fails at once with "database is locked".
        config.setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"] == "django.db.backends.mysql":
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].update(
            {
                "charset": "utf8mb4",
                # READ COMMITTED: a worker that has locked a lead sees every committed event row.
                "isolation_level": "read committed",
                "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
            }
        )
    return config


DATABASES = {"default": database_config(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: queue, cache, channel layer -----------------------------------------------------

REDIS_URL = env("REDIS_URL")

# How scoring work is dispatched: "celery" (REDIS_URL set), "embedded" (an asyncio task inside
# the web server process) or "inline" (synchronously after commit; tests and one-shot commands).
TARGETGRID_QUEUE = env("TARGETGRID_QUEUE", "celery" if REDIS_URL else "embedded")
if TARGETGRID_QUEUE not in {"celery", "embedded", "inline"}:
    raise ImproperlyConfigured("TARGETGRID_QUEUE must be one of celery, embedded, inline")
if TARGETGRID_QUEUE == "celery" and not REDIS_URL:
    raise ImproperlyConfigured("TARGETGRID_QUEUE=celery needs REDIS_URL (the Celery broker).")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.ReusedClientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tg",
            # A Redis that does not answer fails a cache call in seconds (the rate limiter then
            # fails open) instead of holding the request for the OS's connect timeout.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # The default capacity (100) silently drops messages under bursts.
                "capacity": env_int("CHANNELS_CAPACITY", 20000),
                "expiry": 60,
                "prefix": "tg:asgi",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": env_int("CHANNELS_CAPACITY", 20000), "expiry": 60},
        }
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A worker never gives up on the broker: it reconnects for as long as Redis is away (the default
# stops after 100 attempts, ~50 minutes, and the process exits). celery 5.7.0 crashed on the
# reconnect itself: see requirements.txt. Under a supervisor (deploy/, docker-compose.yml) a
# worker that dies anyway is started again.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Tasks running when the connection drops finish (a drain commits its work); their messages could
# not be acked and come back later, and every task is idempotent. Cancelling them instead would
# kill a drain mid-transaction and leave its partition lease to expire.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Queues by kind, so two big imports cannot hold every worker slot while scoring waits. A worker
# started without -Q consumes all of them (a laptop, one worker); production runs scoring workers
# (-Q scoring,realtime,celery: `make worker`), import workers (-Q imports: `make worker-imports`) and
# outbound webhook senders (-Q outbound: `make worker-outbound`).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [Queue(name) for name in ("scoring", "imports", "realtime", "celery", "outbound")]
CELERY_TASK_ROUTES = {
    # Long jobs share the imports workers, so they never hold up scoring.
    "scoring.rescore_run": {"queue": "imports"},
    "scoring.decay_refresh": {"queue": "imports"},
    "scoring.*": {"queue": "scoring"},
    "events.import*": {"queue": "imports"},
    # Outbound webhooks wait on receivers: their own workers (`make worker-outbound`).
    "realtime.deliveries_send": {"queue": "outbound"},
    "realtime.*": {"queue": "realtime"},
}
# A publish must not hang a request when the broker is down: the event row is already stored
# and the periodic sweep re-enqueues it.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 2}
# The sweep is cheap (one indexed query; wake-ups only for partitions with old pending events), so
# frequent: scoring resumes within seconds of any fault ending, whatever happened to the wake-ups.
TARGETGRID_SWEEP_SECONDS = env_int("TARGETGRID_SWEEP_SECONDS", 5)
# Decay (docs/scoring-model.md): leads holding a decaying contribution are re-evaluated this often.
TARGETGRID_DECAY_REFRESH_SECONDS = env_int("TARGETGRID_DECAY_REFRESH_SECONDS", 900)
# Leads per transaction of a background rescore, and a pause between two batches (a throttle: live
# scoring gets the database between them). SQLite has one write lock, taken for a whole batch, and
# writers waiting for it poll with back-off, so back-to-back batches starve ingest (bench/rescore.py,
# 20,000 leads: 500/0 ms rescored ~890 leads/s but events arrived at 121/s, p99 5.4 s, instead of
# 200/s); smaller batches with a pause hand it over. MariaDB/PostgreSQL lock only the batch's leads.
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
TARGETGRID_RESCORE_BATCH = env_int("TARGETGRID_RESCORE_BATCH", 100 if _SQLITE else 500)
TARGETGRID_RESCORE_PAUSE_MS = env_int("TARGETGRID_RESCORE_PAUSE_MS", 50 if _SQLITE else 0)

CELERY_BEAT_SCHEDULE = {
    "sweep-pending-events": {"task": "scoring.sweep_pending", "schedule": float(TARGETGRID_SWEEP_SECONDS)},
    "resume-stalled-imports": {"task": "events.imports_resume_stalled", "schedule": 60.0},
    "resume-stalled-rescores": {"task": "scoring.rescore_resume", "schedule": 30.0},
    "decay-refresh": {"task": "scoring.decay_refresh", "schedule": float(TARGETGRID_DECAY_REFRESH_SECONDS)},
    "alerts-sweep": {"task": "realtime.alerts_sweep", "schedule": float(TARGETGRID_SWEEP_SECONDS)},
}
# The embedded worker (config/embedded.py) is its own beat; at start-up it runs each entry above
# once with these kwargs, taking over at once whatever a previous server process left pending.
TARGETGRID_EMBEDDED_STARTUP_KWARGS = {
    "scoring.sweep_pending": {"older_than_seconds": 0},
    "events.imports_resume_stalled": {"older_than_seconds": 0},
    "scoring.rescore_resume": {"older_than_seconds": 0},
}

# --- TargetGrid behaviour -------------------------------------------------------------------

# "refold": a late event is applied at its event-time position (default).
# "drop": the seed's behaviour: late events are stored as skipped and never scored.
TARGETGRID_LATE_EVENTS = env("TARGETGRID_LATE_EVENTS", "refold")
if TARGETGRID_LATE_EVENTS not in {"refold", "drop"}:
    raise ImproperlyConfigured("TARGETGRID_LATE_EVENTS must be 'refold' or 'drop'")
TARGETGRID_BATCH_MAX = env_int("TARGETGRID_BATCH_MAX", 10_000)
TARGETGRID_PROCESS_CHUNK = env_int("TARGETGRID_PROCESS_CHUNK", 1000)
# A verified API key is remembered per process this long; a revoke reaches other processes within it.
TARGETGRID_API_KEY_CACHE_SECONDS = env_int("TARGETGRID_API_KEY_CACHE_SECONDS", 10)
# Ingest validation remembers which event types have a rule this long per process (0: ask every time).
TARGETGRID_RULES_CACHE_SECONDS = env_int("TARGETGRID_RULES_CACHE_SECONDS", 2)
# Celery mode: leads are split into this many partitions; one drain task at a time per partition
# (scoring/partitions.py). More partitions than worker processes keeps every worker busy.
TARGETGRID_PARTITIONS = env_int("TARGETGRID_PARTITIONS", 8)
# A drain task scores at most this many events per transaction, and hands over after this long.
TARGETGRID_DRAIN_CHUNK = env_int("TARGETGRID_DRAIN_CHUNK", 2000)
TARGETGRID_DRAIN_SECONDS = env_int("TARGETGRID_DRAIN_SECONDS", 20)
# A drain whose partition has fewer events pending than this also scores the other dirty partitions
# nobody is draining, in the same transaction (group commit; 0 turns it off).
TARGETGRID_DRAIN_COMBINE_BELOW = env_int("TARGETGRID_DRAIN_COMBINE_BELOW", 100)
# Batch window: a drain starts at most this long after the first event that woke it (0: at once).
TARGETGRID_DRAIN_WINDOW_MS = env_int("TARGETGRID_DRAIN_WINDOW_MS", 20)
# A drain's lease on its partitions, renewed every third of it while the drain works: a killed
# worker's partitions are drained by another worker after at most this long (correctness never
# depends on it: scoring locks the lead rows).
TARGETGRID_DRAIN_LEASE_SECONDS = env_int("TARGETGRID_DRAIN_LEASE_SECONDS", 10)
# The sweep (Celery beat, every TARGETGRID_SWEEP_SECONDS) wakes partitions whose oldest pending
# event is older than this; the embedded worker re-sends such events every 30 s.
TARGETGRID_SWEEP_AFTER_SECONDS = env_int("TARGETGRID_SWEEP_AFTER_SECONDS", 10)
# GET /health/ready answers 503 when the oldest pending event is older than this (scoring stalled).
TARGETGRID_READY_MAX_PENDING_SECONDS = env_int("TARGETGRID_READY_MAX_PENDING_SECONDS", 60)
TARGETGRID_LEADERBOARD_SIZE = env_int("TARGETGRID_LEADERBOARD_SIZE", 10)
# At most one leaderboard.updated per this many seconds (plus a trailing one); 0 = every batch.
TARGETGRID_LEADERBOARD_INTERVAL = env_int("TARGETGRID_LEADERBOARD_INTERVAL", 1)


# --- Stages and alerts (docs/stages-and-alerts.md) ----------------------------------------------

# Outbound webhooks (realtime/outbound.py)
# Per-request timeout (connect at most 5 s; each read this long). A sender claims a row for this
# plus 30 s: a sender killed mid-request loses it then, and the row is sent again (same webhook-id).
TARGETGRID_WEBHOOK_TIMEOUT_SECONDS = env_int("TARGETGRID_WEBHOOK_TIMEOUT_SECONDS", 10)
TARGETGRID_WEBHOOK_CLAIM_MARGIN_SECONDS = env_int("TARGETGRID_WEBHOOK_CLAIM_MARGIN_SECONDS", 30)
# Retries: base * factor ** (n - 1) seconds after failed attempt n, jitter x[0.8, 1.2], at most the
# cap; the later of that and the receiver's Retry-After (bounded). After MAX_ATTEMPTS: failed.
TARGETGRID_WEBHOOK_RETRY_BASE_SECONDS = env_int("TARGETGRID_WEBHOOK_RETRY_BASE_SECONDS", 5)
TARGETGRID_WEBHOOK_RETRY_FACTOR = env_int("TARGETGRID_WEBHOOK_RETRY_FACTOR", 4)
if TARGETGRID_WEBHOOK_RETRY_FACTOR < 2:
    raise ImproperlyConfigured("TARGETGRID_WEBHOOK_RETRY_FACTOR must be at least 2 (delays must grow)")
TARGETGRID_WEBHOOK_RETRY_MAX_SECONDS = env_int("TARGETGRID_WEBHOOK_RETRY_MAX_SECONDS", 6 * 3600)
TARGETGRID_WEBHOOK_RETRY_AFTER_MAX_SECONDS = env_int("TARGETGRID_WEBHOOK_RETRY_AFTER_MAX_SECONDS", 24 * 3600)
TARGETGRID_WEBHOOK_MAX_ATTEMPTS = env_int("TARGETGRID_WEBHOOK_MAX_ATTEMPTS", 8)
# This many failed attempts in a row (any deliveries) pause an endpoint and tell the operator.
TARGETGRID_WEBHOOK_PAUSE_AFTER = env_int("TARGETGRID_WEBHOOK_PAUSE_AFTER", 10)
# After "Rotate secret" the old secret signs too (two signatures) for this long.
TARGETGRID_WEBHOOK_ROTATION_OVERLAP_HOURS = env_int("TARGETGRID_WEBHOOK_ROTATION_OVERLAP_HOURS", 24)
# A sender's requests in flight (threads), at most this many to one endpoint, and how long one
# sender task runs before it hands over (a wake-up or the sweep starts the next).
TARGETGRID_WEBHOOK_SENDER_THREADS = env_int("TARGETGRID_WEBHOOK_SENDER_THREADS", 32)
TARGETGRID_WEBHOOK_ENDPOINT_CONCURRENCY = env_int("TARGETGRID_WEBHOOK_ENDPOINT_CONCURRENCY", 16)
TARGETGRID_WEBHOOK_SENDER_MAX_SECONDS = env_int("TARGETGRID_WEBHOOK_SENDER_MAX_SECONDS", 60)
# A sender schedules its own wake-up for the next retry due within this long; later ones are
# found by the periodic alerts sweep (a countdown longer than the broker's visibility timeout
# would run twice).
TARGETGRID_WEBHOOK_WAKE_MAX_SECONDS = env_int("TARGETGRID_WEBHOOK_WAKE_MAX_SECONDS", 300)


# E-mail alerts (realtime/mail.py). SMTP when EMAIL_HOST is set; otherwise the console backend
# (each e-mail printed on the server's stdout), so a laptop sees its alerts without a mail server.
# EMAIL_BACKEND overrides both: a dotted path, or smtp / console / file (under DATA_DIR/mail) / locmem / dummy.
EMAIL_HOST = env("EMAIL_HOST", "")
_EMAIL_BACKENDS = {name: f"django.core.mail.backends.{name}.EmailBackend"
                   for name in ("smtp", "console", "filebased", "locmem", "dummy")}
_EMAIL_BACKENDS["file"] = _EMAIL_BACKENDS["filebased"]
EMAIL_BACKEND = env("EMAIL_BACKEND", "smtp" if EMAIL_HOST else "console")
EMAIL_BACKEND = _EMAIL_BACKENDS.get(EMAIL_BACKEND, EMAIL_BACKEND)
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set at most one of EMAIL_USE_TLS (STARTTLS, port 587) and EMAIL_USE_SSL (port 465).")
EMAIL_PORT = env_int("EMAIL_PORT", 465 if EMAIL_USE_SSL else 587 if EMAIL_USE_TLS else 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
# Seconds before an SMTP connect/read gives up (Django's default is to wait forever).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "TargetGrid <targetgrid@localhost>")
# Links in e-mails point here (the address people open the pages at).
TARGETGRID_PUBLIC_URL = env("TARGETGRID_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# At most one e-mail per recipient per this many seconds: alerts arriving meanwhile wait for the
# next digest. The first alert after a quiet period waits TARGETGRID_ALERT_GATHER_SECONDS, so a
# burst (a rescore moving many leads) becomes one digest instead of one alert and one digest.
TARGETGRID_ALERT_DIGEST_SECONDS = env_int("TARGETGRID_ALERT_DIGEST_SECONDS", 60)
TARGETGRID_ALERT_GATHER_SECONDS = env_int("TARGETGRID_ALERT_GATHER_SECONDS", 5)
# Digests are sent off the scoring workers, beside the webhook sender (queue "outbound"); the
# pattern goes first because Celery takes the first matching route.
CELERY_TASK_ROUTES = {"realtime.mail_*": {"queue": "outbound"}, **CELERY_TASK_ROUTES}


# The lead stages are admin-managed rows (scoring.Stage, scoring.StageSettings; /admin/scoring/stage/,
# /api/stages). The old TARGETGRID_STAGES variable is read once, by migration scoring/0009, to seed them.

# --- API ------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "events.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["events.authentication.IsApiKeyOrStaff"],
    # Bounded JSON (depth, UTF-8; 400 naming "body"), rendered even when echoing bad client text.
    "DEFAULT_RENDERER_CLASSES": ["events.http.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["events.http.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

# A 10,000-event batch is a few MB of JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", "")
CORS_URLS_REGEX = r"^/(api|v1|webhooks)/.*$"

# --- Ingestion adapters: webhooks, uploads, Segment-compatible /v1/*, rate limits ----------

# JSON bodies of /api/events*, /webhooks/* (413 beyond). Segment's own limits are fixed by its spec.
TARGETGRID_MAX_BODY_BYTES = env_int("TARGETGRID_MAX_BODY_BYTES", DATA_UPLOAD_MAX_MEMORY_SIZE)
# File imports: the largest accepted upload (413 beyond), rows per ingest transaction.
TARGETGRID_UPLOAD_MAX_BYTES = env_int("TARGETGRID_UPLOAD_MAX_BYTES", 2 * 1024**3)
TARGETGRID_IMPORT_CHUNK = env_int("TARGETGRID_IMPORT_CHUNK", 2000)
# Uploads are streamed by Django to a temporary file; keep it on the data volume so that handing it
# to the import job is a rename, not a copy.
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "uploads" / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
# Standard Webhooks replay window (seconds either side of the server clock).
TARGETGRID_WEBHOOK_TOLERANCE_SECONDS = env_int("TARGETGRID_WEBHOOK_TOLERANCE_SECONDS", 300)
# django-ratelimit rates ("<count>/<period>", period s|m|h|d), per API key / webhook source / write key;
# requests that are not authenticated are limited per client IP. The ingest defaults stop a runaway
# client without throttling a real integration (a CRM sync, the benchmark's 32 clients on one key);
# tighten them per deployment.
TARGETGRID_RATE_INGEST = env("TARGETGRID_RATE_INGEST", "2000/s")
TARGETGRID_RATE_UPLOAD = env("TARGETGRID_RATE_UPLOAD", "30/m")
TARGETGRID_RATE_WEBHOOK = env("TARGETGRID_RATE_WEBHOOK", "2000/s")
TARGETGRID_RATE_SEGMENT = env("TARGETGRID_RATE_SEGMENT", "2000/s")
TARGETGRID_RATE_ANONYMOUS = env("TARGETGRID_RATE_ANONYMOUS", "60/m")
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
# W001 flags any cache but django-redis/memcached; Django's own RedisCache increments atomically too.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
if not REDIS_URL:
    # The embedded default is one process (daphne), so its local-memory cache *is* shared by every
    # request; with REDIS_URL the counters live in Redis, shared by every web process.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")
# Behind a proxy set e.g. RATELIMIT_IP_META_KEY=HTTP_X_REAL_IP so clients are not all one IP.
if env("RATELIMIT_IP_META_KEY"):
    RATELIMIT_IP_META_KEY = env("RATELIMIT_IP_META_KEY")

# Admin import/export (django-import-export): importing needs the model's "add" permission,
# exporting its "view" permission, so the Viewers group can export but never import.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# --- Auth, i18n, static ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
