"""Callbook settings: one file, configured from the environment.

Every value has a default that is safe for the embedded mode (SQLite, local recordings folder, a Celery broker
on the local filesystem) and a documented environment variable for production. Secrets may also be given as
``<NAME>_FILE`` pointing at a file that holds the value (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from crm.logs import log_format_for, logging_config
from crm.storage_config import s3_recordings_storage

# Lets admin and form classes be subscripted with their model (ModelAdmin[Team]) at run time, for mypy.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A variable set to "" counts as unset: in a .env file `SESSION_COOKIE_SECURE=` must fall back to the safe default,
# not turn secure cookies off (django-environ would read it as False).
env.ENVIRON = {name: value for name, value in os.environ.items() if value != ""}


def _secret(name: str, default: str = "") -> str:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return str(env.str(name, default=default))


# --- Core -------------------------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
# Where the embedded mode keeps its state (SQLite file, recordings, broker messages); relative to the project.
VAR_DIR = BASE_DIR / env.str("CALLBOOK_VAR_DIR", default="var")

# Public on purpose: it only ever serves DEBUG mode, and it is refused with DEBUG off (below).
INSECURE_DEFAULT_SECRET_KEY = "django-insecure-callbook-embedded-default-do-not-use-in-production"  # noqa: S105
SECRET_KEY = _secret("SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
if not DEBUG and SECRET_KEY == INSECURE_DEFAULT_SECRET_KEY:
    # Sessions, password-reset links and signed URLs would be forgeable by anyone who read this file.
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. With DEBUG off Callbook refuses to start on the built-in development key: "
        "set SECRET_KEY (or SECRET_KEY_FILE) to a long random value, or DEBUG=1 for local development."
    )
if not DEBUG and SECRET_KEY.startswith("change-me"):
    # .env.example's placeholder: copied and forgotten, it would be a key anyone can read in the repository.
    raise ImproperlyConfigured(
        "SECRET_KEY is still the placeholder from .env.example. Set it to a long random value, e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "crm",
    "calls",
    "campaigns",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
]

MIDDLEWARE = [
    # First: load balancers and orchestrators probe by IP, which ALLOWED_HOSTS (rightly) refuses elsewhere.
    "crm.middleware.HealthCheckMiddleware",
    # Prometheus scrapes by IP too; only allowed scrapers are answered here (docs/operations.md).
    "crm.observability.MetricsEndpointMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Request id and log context before anything that may log (host validation does).
    "crm.observability.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: request counts by view, method and status, and latencies by view and method.
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"
AUTH_USER_MODEL = "crm.User"

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

# --- Database ---------------------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'callbook.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The embedded mode runs the web server and a Celery worker against one file: WAL lets readers proceed
    # while one writes, IMMEDIATE transactions take the write lock up front instead of failing on upgrade,
    # and busy_timeout makes a writer wait rather than raise "database is locked". A page cache of 32 MB per
    # connection (SQLite's default is 2 MB, filled only as pages are read) and reads through mmap keep a table of
    # a hundred thousand calls in memory: the sweep's inserts under random session ids touched pages all over
    # the file, re-reading them with a syscall each.
    # Tests use a file, not memory, so that a real Celery worker process can open the same test database;
    # one per test process, so that two runs on one checkout do not drop each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768; PRAGMA mmap_size=268435456;"
        ),
    }
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
# Connections are kept between requests (not on SQLite, where opening one costs nothing), and a kept one is
# checked before its first use in each request: after a PostgreSQL restart the dead connection is replaced
# instead of failing the request, with no restart of the app.
DATABASES["default"]["CONN_MAX_AGE"] = env.int(
    "DATABASE_CONN_MAX_AGE", default=0 if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else 60
)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Brute-force throttling (crm/throttling.py): failed sign-ins are counted in the cache per username and per client
# address for a window opened by the first failure; past a limit every attempt is refused until the window ends.
# The backend refuses before checking a password, so the login page and Django admin's are covered alike.
AUTHENTICATION_BACKENDS = ["crm.throttling.ThrottledModelBackend"]
LOGIN_THROTTLE_FAILURES_PER_USERNAME = env.int("LOGIN_THROTTLE_FAILURES_PER_USERNAME", default=5)
# Also counts invalid API tokens (separately). Higher: an office behind one NAT address shares it.
LOGIN_THROTTLE_FAILURES_PER_IP = env.int("LOGIN_THROTTLE_FAILURES_PER_IP", default=30)
LOGIN_THROTTLE_WINDOW_SECONDS = env.int("LOGIN_THROTTLE_WINDOW_SECONDS", default=15 * 60)

# --- I18N / static ----------------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploaded files other than recordings (contact CSV imports): the web process stores them and a worker reads
# them, so in a multi-container deployment this must be a volume both mount.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# --- Recordings storage -----------------------------------------------------------------------------------

RECORDINGS_ROOT = Path(env.str("RECORDINGS_ROOT", default=str(VAR_DIR / "recordings")))
RECORDINGS_S3_BUCKET = env.str("RECORDINGS_S3_BUCKET", default="")

recordings_storage: dict[str, Any]
if RECORDINGS_S3_BUCKET:
    recordings_storage = s3_recordings_storage(
        bucket=RECORDINGS_S3_BUCKET,
        endpoint_url=env.str("RECORDINGS_S3_ENDPOINT_URL", default=""),
        region=env.str("RECORDINGS_S3_REGION", default=""),
        access_key=_secret("RECORDINGS_S3_ACCESS_KEY_ID"),
        secret_key=_secret("RECORDINGS_S3_SECRET_ACCESS_KEY"),
        prefix=env.str("RECORDINGS_S3_PREFIX", default=""),
        signed_url_ttl=env.int("RECORDINGS_SIGNED_URL_TTL", default=300),
    )
else:
    recordings_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": RECORDINGS_ROOT, "base_url": None},
    }

STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
    "recordings": recordings_storage,
}

# --- REST API ---------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    # Bearer first: its WWW-Authenticate header makes unauthenticated API calls answer 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "crm.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "crm.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Callbook API",
    "DESCRIPTION": (
        "The system of record for AI voice-agent and dialer call sessions. Authenticate with "
        "`Authorization: Bearer <token>` (create tokens in the UI or with `manage.py create_api_token`)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from our own static files: no CDN, works offline and under a strict CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `status`; each gets a name of its own in the schema.
    "ENUM_NAME_OVERRIDES": {
        "CallStatusEnum": "calls.states.Status",
        "RecordingStatusEnum": "calls.models.Recording.Status",
        "RecordingAvailabilityEnum": "calls.models.CallSession.RecordingStatus",
        "CampaignStatusEnum": "campaigns.models.Campaign.Status",
        "ContactImportStatusEnum": "campaigns.models.ContactImport.Status",
    },
}

CORS_ALLOWED_ORIGINS: list[str] = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
# Browsers may only read these response headers cross-origin when they are listed.
CORS_EXPOSE_HEADERS = ["Location", "X-Session-ID", "X-Request-ID"]

# --- Celery -----------------------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'results'}")
# The default result backend and beat schedule live here whatever the broker is.
for _folder in (VAR_DIR / "celery", VAR_DIR / "celery" / "results"):
    _folder.mkdir(parents=True, exist_ok=True)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded mode: messages are files under var/celery, so a real worker runs with no broker server. Written
    # whole, then renamed into place (crm/broker_fs.py): kombu's own transport let a worker take a half-written one.
    CELERY_BROKER_TRANSPORT = "crm.broker_fs:Transport"
    _broker_dir = VAR_DIR / "celery" / "broker"
    # kombu does not create these folders, and the web process and the worker must agree on them.
    for _folder in (_broker_dir, VAR_DIR / "celery" / "control", VAR_DIR / "celery" / "results"):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
        # How long an idle consumer sleeps between looks at the folder. kombu's default of 1 s let a worker take at
        # most one task a second per process; at 0.1 s short tasks (an ingest: a few ms) still waited about 50 ms
        # each for the next look, and 200 ingests took 10 s instead of 2. Measured idle cost of the worker: 0.35 %
        # of a core at 0.1 s, 1.4 % at 0.02 s, 2.5 % at 0.01 s.
        "polling_interval": env.float("CELERY_FILESYSTEM_POLLING_INTERVAL", default=0.02),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Redis: a delivered task not acknowledged within this time is delivered again (acks_late tasks are
        # acknowledged when they finish). That is how the task of a worker that died (SIGKILL, OOM, a lost
        # machine) comes back: the next worker to start restores it, or a running one within ~100 s (kombu's
        # sweep). The trade-off: shorter recovers sooner, but a task that runs longer than this, or waits longer
        # on a retry countdown, is delivered a second time while the first still runs. Keep it above the longest
        # task and retry countdown; ingest claims its recording, so a second delivery does no double work. (The
        # filesystem broker deletes a message when a worker reads it: nothing is redelivered, and beat's
        # retry_failed_ingests re-queues the ingest from the database once its claim lease has run out.)
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        # A Redis that hangs (a frozen machine, a partition) instead of refusing costs every command this long, and
        # a request that queues a task waits for up to three (see the publish retry policy below): short, since
        # Redis answers in well under a millisecond.
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
# A task whose worker died mid-way goes back to the queue instead of being acknowledged as failed.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Two deployments sharing one Redis keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=2)
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(VAR_DIR / "celery" / "beat-schedule")
)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "clear-expired-login-sessions": {"task": "crm.tasks.clear_expired_login_sessions", "schedule": 24 * 3600},
    "sweep-orphans": {"task": "calls.tasks.sweep_orphans", "schedule": env.int("SWEEP_ORPHANS_EVERY", default=300)},
    "expire-stale-sessions": {"task": "calls.tasks.expire_stale_sessions", "schedule": 600},
    "retry-failed-ingests": {
        "task": "calls.tasks.retry_failed_ingests",
        "schedule": env.int("RETRY_FAILED_INGESTS_EVERY", default=900),
    },
    "apply-recording-retention": {"task": "calls.tasks.apply_recording_retention", "schedule": 24 * 3600},
    # Contact imports whose task was lost with a worker or a broker outage continue from their cursor.
    "resume-stalled-imports": {"task": "campaigns.import_tasks.resume_stalled_imports", "schedule": 120},
    # The campaign scheduler's safety net: ticks runs whose chain of ticks died with a worker or a lost message.
    "tick-active-runs": {
        "task": "campaigns.tasks.tick_active_runs",
        "schedule": env.int("CAMPAIGN_SAFETY_NET_EVERY", default=30),
    },
}
# A publish to a broker that is down gives up quickly: the work stays recorded in the database and the periodic
# jobs queue it again, so a request never hangs on the broker. One retry, on a fresh connection, rides out a blip;
# every further one would cost a hung broker two more socket timeouts (the new connection's handshake, the publish).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}

# --- Security ---------------------------------------------------------------------------------------------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy: scripts, styles and media only from this origin (no inline script anywhere), nothing
# may frame the pages. Recordings on S3 play from signed URLs on the bucket's host, which media-src allows.
_media_sources = [SELF]
if RECORDINGS_S3_BUCKET:
    _endpoint = env.str("RECORDINGS_S3_ENDPOINT_URL", default="")
    _media_sources.append(_endpoint.rstrip("/") if _endpoint else "https://*.amazonaws.com")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "media-src": _media_sources,
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Logging ----------------------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# "json": one JSON object per line (production); "text": readable lines (development). Default: text with
# DEBUG on, else JSON. Every line carries the request id, user, session, run and task it concerns (crm/logs.py).
try:
    LOG_FORMAT = log_format_for(requested=env.str("LOG_FORMAT", default=""), debug=DEBUG)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)

# --- Metrics and error reporting (docs/operations.md) -----------------------------------------------------

# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` when a token is set, else only these addresses
# or networks; anyone else gets the 404 of an unknown address.
METRICS_TOKEN = _secret("METRICS_TOKEN")
METRICS_ALLOWED_IPS: list[str] = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network.strip(), strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_network!r} is not an IP address or network") from exc
# A Celery worker serves its own metrics (all its pool processes') on this port when set; 0: not served.
CELERY_METRICS_PORT = env.int("CELERY_METRICS_PORT", default=0)
CELERY_METRICS_ADDRESS = env.str("CELERY_METRICS_ADDRESS", default="0.0.0.0")  # noqa: S104  # protected as /metrics

SENTRY_DSN = _secret("SENTRY_DSN")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="")
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if SENTRY_DSN:
    # Imported only here: without a DSN, sentry_sdk is never loaded.
    from crm.sentry import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=SENTRY_ENVIRONMENT,
        release=SENTRY_RELEASE,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
    )

# --- Callbook ---------------------------------------------------------------------------------------------

# PostgreSQL text-search configuration for transcripts: "simple" does not stem, so it suits every language.
SEARCH_CONFIG = env.str("SEARCH_CONFIG", default="simple")
RECORDING_MAX_UPLOAD_BYTES = env.int("RECORDING_MAX_UPLOAD_BYTES", default=500 * 1024 * 1024)
TRANSCRIPT_MAX_UPLOAD_BYTES = env.int("TRANSCRIPT_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
# Ingest gives up on audio that declares or decodes to more than this: compressed silence is tiny (hours of it fit
# in a few hundred KB of FLAC), and decoding it all would keep a worker busy for as long.
RECORDING_MAX_DURATION_SECONDS = env.int("RECORDING_MAX_DURATION_SECONDS", default=12 * 3600)
# Contact CSV uploads larger than this are refused (413). 25 MiB holds some 250,000 typical contact rows; the
# file is read whole into memory to be checked, so keep it well under what a web and a worker process may use.
CONTACT_IMPORT_MAX_BYTES = env.int("CONTACT_IMPORT_MAX_BYTES", default=25 * 1024 * 1024)
# An import task hands over to a fresh one every 2 minutes and marks each batch: 5 minutes without a sign of life
# means its task was lost, and beat queues it again.
CONTACT_IMPORT_STALL_SECONDS = env.int("CONTACT_IMPORT_STALL_SECONDS", default=300)
# Speech-to-text for recordings that arrive without a transcript: "pocketsphinx" (offline, English, the
# embedded default), "http" (an OpenAI-compatible /v1/audio/transcriptions server) or "none".
TRANSCRIPTION_BACKEND = env.str("TRANSCRIPTION_BACKEND", default="pocketsphinx")
TRANSCRIPTION_HTTP_URL = env.str("TRANSCRIPTION_HTTP_URL", default="")
TRANSCRIPTION_HTTP_MODEL = env.str("TRANSCRIPTION_HTTP_MODEL", default="whisper-1")
TRANSCRIPTION_HTTP_API_KEY = _secret("TRANSCRIPTION_HTTP_API_KEY")
TRANSCRIPTION_HTTP_TIMEOUT = env.int("TRANSCRIPTION_HTTP_TIMEOUT", default=300)
# Sessions stuck in a live status with no event for this long are marked abandoned by expire_stale_sessions.
SESSION_STALE_AFTER_MINUTES = env.int("SESSION_STALE_AFTER_MINUTES", default=240)
# retry_failed_ingests gives a recording at most this many attempts in all.
INGEST_MAX_ATTEMPTS = env.int("INGEST_MAX_ATTEMPTS", default=5)
# An ingest's claim on a recording ("processing") is trusted this long; an older one belongs to a worker that
# died mid-way and is taken over. It must exceed the longest read + decode of one recording (speech-to-text runs
# after the claim is released) and stay under CELERY_VISIBILITY_TIMEOUT (a redelivered ingest waits it out).
INGEST_CLAIM_LEASE_SECONDS = env.int("INGEST_CLAIM_LEASE_SECONDS", default=15 * 60)
# retry_failed_ingests re-queues a recording left "pending" this long: its task could not be published (the
# broker was down) or was lost with the broker or a worker.
INGEST_PENDING_GRACE_SECONDS = env.int("INGEST_PENDING_GRACE_SECONDS", default=5 * 60)
# Recordings older than this many days are deleted from storage (logged on each session). 0 keeps them forever.
RECORDING_RETENTION_DAYS = env.int("RECORDING_RETENTION_DAYS", default=0)

# How often a token's last_used_at is written: once a minute is enough to tell stale tokens apart, and saves
# a write on every API request.
API_TOKEN_TOUCH_INTERVAL_SECONDS = 60
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=3.0)

# --- Campaigns: the outbound-run scheduler ----------------------------------------------------------------

# The base URL voice agents (and the embedded simulator) use to reach this Callbook: dial requests carry the
# event, recording and transcript URLs under it.
CALLBOOK_PUBLIC_URL = env.str("CALLBOOK_PUBLIC_URL", default="http://127.0.0.1:8000")
# Seconds between a running run's scheduler ticks while calls are in flight or contacts are due.
CAMPAIGN_TICK_INTERVAL_SECONDS = env.float("CAMPAIGN_TICK_INTERVAL_SECONDS", default=1.0)
# At most this many new dials per tick (the campaign's concurrency and rate limits apply as well).
CAMPAIGN_MAX_DIALS_PER_TICK = env.int("CAMPAIGN_MAX_DIALS_PER_TICK", default=50)
# A dial whose hand-off to the dialer has not completed after this many seconds is handed off again (same
# session id); it must exceed the http dialer's timeout x attempts.
CAMPAIGN_DISPATCH_GRACE_SECONDS = env.int("CAMPAIGN_DISPATCH_GRACE_SECONDS", default=120)
