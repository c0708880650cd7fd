"""Tileflow settings: embedded defaults, everything overridable from the environment.

Embedded (no variables set): SQLite and media under ./var, the in-memory channel layer, step
workers inside the server process. Scale-out: DATABASE_URL (Postgres) and REDIS_URL (Redis
channel layer; steps then run in `manage.py runworker` processes).
"""

import os
import secrets
import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def _secret_key() -> str:
    """Return the configured secret key, or one generated once into a git-ignored file."""
    configured = env.str("TILEFLOW_SECRET_KEY", default="")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("TILEFLOW_DEBUG", default=False)
ALLOWED_HOSTS = env.list("TILEFLOW_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("TILEFLOW_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # serves the API docs' Swagger UI from its own static files: no CDN needed
    # Before "channels": runtime's runworker (a worker with backpressure) replaces Channels' own.
    "runtime",
    "channels",
    "flows",
    "console",
]

MIDDLEWARE = [
    "console.errors.ApiErrorsAsJsonMiddleware",  # outermost: every error under /api/ answers JSON
    "console.limits.UploadLimitMiddleware",  # 413 before any body is parsed
    "console.query.SingleValuedQueryMiddleware",  # ?flow=a&flow=b is an error, not the last value
    "console.json_body.JsonObjectBodyMiddleware",  # a JSON body under /api/ is an object
    "django.middleware.security.SecurityMiddleware",
    "console.headers.SecurityHeadersMiddleware",  # Content-Security-Policy: only the console's own code
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the language cookie, else Accept-Language
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "console.urls"
ASGI_APPLICATION = "console.asgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tileflow.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Runs write progress from threads while requests read: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Tests too use a file, not shared-cache memory, whose table locks fail concurrent runs at once.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"tileflow-test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py >= 8 would time an idle receive() out after 5 s.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "capacity": 200,
                # A console's placed runs share its reply channel (runtime.placement.Replies).
                "channel_capacity": {"tileflow.placed.*": 20_000},
                "expiry": 60,
            },
        },
        # The runs lane alone: an offer may wait for a free worker far longer than a message's 60 s.
        "runs": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "capacity": 100_000,
                "expiry": 86_400,
            },
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# Compiled (.mo) by `make run`/`make test` (manage.py compilemessages); only the .po files are committed.
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600  # the switcher's choice is remembered for a year
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Third-party front-end code comes from npm (package.json), never from the repository.
    ("vendor/drawflow", BASE_DIR / "node_modules" / "drawflow" / "dist"),
]
MEDIA_ROOT = Path(env.str("TILEFLOW_MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Media are served only through views that check ownership: there is deliberately no MEDIA_URL route.
MEDIA_URL = "/media-not-served/"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the editor's API client reads it to send X-CSRFToken
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env.bool("TILEFLOW_HTTPS", default=False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = env.int("TILEFLOW_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"without_traceback": {"()": "console.errors.WithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "console_one_line": {"class": "logging.StreamHandler", "filters": ["without_traceback"]},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "tileflow": {"level": env.str("TILEFLOW_LOG_LEVEL", default="INFO")},
        # Anyone can send a wrong Host header: one line each, not a traceback.
        "django.security.DisallowedHost": {"handlers": ["console_one_line"], "propagate": False},
    },
}

# Tileflow's own limits and knobs; every one is listed in the README with its default.
TILEFLOW = {
    "MAX_UPLOAD_BYTES": env.int("TILEFLOW_MAX_UPLOAD_BYTES", default=64 * 1024 * 1024),
    # A request body from which nothing arrives for this long is given up (408).
    "BODY_TIMEOUT_SECONDS": env.float("TILEFLOW_BODY_TIMEOUT_SECONDS", default=30.0),
    "MAX_PIXELS": env.int("TILEFLOW_MAX_PIXELS", default=150_000_000),
    "MAX_NODES": env.int("TILEFLOW_MAX_NODES", default=200),
    "MAX_WATERMARK_TEXT": env.int("TILEFLOW_MAX_WATERMARK_TEXT", default=500),
    "MAX_CONCURRENT_RUNS_PER_USER": env.int("TILEFLOW_MAX_CONCURRENT_RUNS_PER_USER", default=4),
    # Decoded bytes all runs of a process may hold at once (runtime/admission.py); 0: a quarter of memory.
    "MEMORY_BUDGET_BYTES": env.int("TILEFLOW_MEMORY_BUDGET_BYTES", default=0),
    "MAX_QUEUED_RUNS": env.int("TILEFLOW_MAX_QUEUED_RUNS", default=32),
    # Runs of one user that may wait for their own run slots; 0: a quarter of MAX_QUEUED_RUNS (at least 1).
    "MAX_QUEUED_RUNS_PER_USER": env.int("TILEFLOW_MAX_QUEUED_RUNS_PER_USER", default=0),
    # How long a run (or a websocket's handshake, a few s of it) waits for an unreachable channel layer.
    "LAYER_PATIENCE_SECONDS": env.float("TILEFLOW_LAYER_PATIENCE_SECONDS", default=30.0),
    "TILE_SIZE": env.int("TILEFLOW_TILE_SIZE", default=512),
    # An image of at most this many tiles is cut into tiles twice as large (RunLimits.grid).
    "SMALL_IMAGE_TILES": env.int("TILEFLOW_SMALL_IMAGE_TILES", default=16),
    "MAX_TILES_IN_FLIGHT": env.int("TILEFLOW_MAX_TILES_IN_FLIGHT", default=8),
    "TILE_LEASE_SECONDS": env.float("TILEFLOW_TILE_LEASE_SECONDS", default=30.0),
    "TILE_MAX_ATTEMPTS": env.int("TILEFLOW_TILE_MAX_ATTEMPTS", default=3),
    "HEARTBEAT_SECONDS": env.float("TILEFLOW_HEARTBEAT_SECONDS", default=2.0),
    "WORKER_THREADS": env.int("TILEFLOW_WORKER_THREADS", default=0),  # 0: one per core
    "EMBEDDED_WORKERS": env.bool("TILEFLOW_EMBEDDED_WORKERS", default=not REDIS_URL),
    # With Redis: "worker" conducts each run on one worker (only compressed bytes cross Redis);
    # "tiles" conducts it here and spreads its tiles over the workers (docs/scaling.md).
    "PLACEMENT": env.str("TILEFLOW_PLACEMENT", default="worker"),
    "RUN_LEASE_SECONDS": env.float("TILEFLOW_RUN_LEASE_SECONDS", default=3.0),
    # An interactive placed run nobody took for this long fails when no worker is running at all.
    "NO_WORKER_SECONDS": env.float("TILEFLOW_NO_WORKER_SECONDS", default=15.0),
    "WORKER_RUNS": env.int("TILEFLOW_WORKER_RUNS", default=2),  # runs a worker conducts at once
    # On SIGTERM a worker finishes what it holds for at most this long, then gives the rest back.
    "WORKER_DRAIN_SECONDS": env.float("TILEFLOW_WORKER_DRAIN_SECONDS", default=25.0),
    # Tile pixels on the wire: "none" or "zlib-ng" (level 1); only the Redis layer pays for bytes.
    "WIRE_CODEC": env.str("TILEFLOW_WIRE_CODEC", default="none") if REDIS_URL else "none",
    "STEP_MODULES": env.list("TILEFLOW_STEP_MODULES", default=[]),
    "PRUNE_AFTER_DAYS": env.int("TILEFLOW_PRUNE_AFTER_DAYS", default=30),
    "LOGIN_ATTEMPTS_PER_MINUTE": env.int("TILEFLOW_LOGIN_ATTEMPTS_PER_MINUTE", default=10),
    # Batches (flows/batches.py): what one batch may hold, and how many of its items run at once.
    "BATCH_MAX_ITEMS": env.int("TILEFLOW_BATCH_MAX_ITEMS", default=2000),
    "BATCH_MAX_UPLOAD_BYTES": env.int("TILEFLOW_BATCH_MAX_UPLOAD_BYTES", default=2 * 1024**3),
    "BATCH_CONCURRENCY": env.int("TILEFLOW_BATCH_CONCURRENCY", default=2),
    "BATCH_TILE_SIZE": env.int("TILEFLOW_BATCH_TILE_SIZE", default=1024),
    "ARCHIVE_MAX_BYTES": env.int("TILEFLOW_ARCHIVE_MAX_BYTES", default=4 * 1024**3),
    "ARCHIVE_MAX_RATIO": env.int("TILEFLOW_ARCHIVE_MAX_RATIO", default=200),
    # Triggers (CONTRACT §8): named sources and destinations, and how their pollers behave.
    "FOLDER_ROOTS": env.str("TILEFLOW_FOLDER_ROOTS", default=""),
    "S3_CONNECTIONS": env.str("TILEFLOW_S3_CONNECTIONS", default=""),
    "S3_TIMEOUT_SECONDS": env.float("TILEFLOW_S3_TIMEOUT_SECONDS", default=10.0),
    "EMBEDDED_TRIGGERS": env.bool("TILEFLOW_EMBEDDED_TRIGGERS", default=True),
    "TRIGGER_POLL_SECONDS": env.float("TILEFLOW_TRIGGER_POLL_SECONDS", default=2.0),
    "TRIGGER_LEASE_SECONDS": env.float("TILEFLOW_TRIGGER_LEASE_SECONDS", default=15.0),
    "TRIGGER_SETTLE_SECONDS": env.float("TILEFLOW_TRIGGER_SETTLE_SECONDS", default=1.0),
    "TRIGGER_MAX_ATTEMPTS": env.int("TILEFLOW_TRIGGER_MAX_ATTEMPTS", default=6),
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# A batch sends its images as files of one request (and a path field for each, from a dropped folder).
DATA_UPLOAD_MAX_NUMBER_FILES = TILEFLOW["BATCH_MAX_ITEMS"] + 1
DATA_UPLOAD_MAX_NUMBER_FIELDS = max(1000, TILEFLOW["BATCH_MAX_ITEMS"] + 100)
# Uploads up to this size stay in memory until they are stored once under MEDIA_ROOT; spooling
# them to temporary files first cost three disk writes of the image before its first tile.
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("TILEFLOW_UPLOAD_MEMORY_BYTES", default=16 * 1024 * 1024)
