"""Herald settings: everything comes from the environment, with defaults that
run on a fresh machine (SQLite in WAL mode, the bundled redis-server)."""

import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import embedded_redis
from config.env import env_bool, env_float_list, env_int, env_list, env_str, redis_url_with_db

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

HERALD_VERSION = "0.1.0"

DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules or env_bool("HERALD_TESTING", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    # A stable per-checkout key so sessions survive restarts of the demo.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        import secrets

        key_file.write_text(secrets.token_urlsafe(50))
    SECRET_KEY = key_file.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_rq",
    "ninja",
    "webhooks",
    "deliveries",
    "monitoring",
    "api",
    "dashboard",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After X-Frame-Options, so that it answers first: the portal's pages may be framed.
    "dashboard.csp.PolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so that it runs first on the way out: an htmx action's messages go
    # with its response, before MessageMiddleware keeps them for a later page.
    "dashboard.flash.HtmxMessagesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "dashboard.context.branding",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
_SQLITE_OPTIONS = {
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
    ),
    # Take the write lock at BEGIN so concurrent claimers serialise instead of
    # failing with "database is locked" when a reader upgrades to a writer.
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Parameters travel apart from the statement, so psycopg prepares a
        # statement it has run five times on a connection: PostgreSQL then
        # skips parsing and planning the engine's and publishing's few
        # statements, and the web and worker processes skip quoting values.
        # (Django turns psycopg's preparing off unless told a threshold.)
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=5
        )
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "herald.sqlite3"}
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's, with the writers taking turns without SQLite's naps (config/sqlite).
    DATABASES["default"]["ENGINE"] = "config.sqlite"
    # Kept, as on PostgreSQL: a new SQLite connection registers Django's
    # functions and runs the PRAGMAs below, which cost a fifth of the API's
    # single publishes per second when every request opened one (bench j).
    DATABASES["default"]["CONN_MAX_AGE"] = 600
    DATABASES["default"]["OPTIONS"] = {**_SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
    # Worker processes share the file with the web process and the tests:
    # the test database must be a file too, not the in-memory default.
    # HERALD_TEST_SQLITE_NAME lets two test runs on one checkout keep apart.
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / env_str("HERALD_TEST_SQLITE_NAME", "test_herald.sqlite3"))
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and queues ------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
HERALD_EMBEDDED_REDIS = not REDIS_URL
if HERALD_EMBEDDED_REDIS:
    REDIS_URL = embedded_redis.default.url()
if TESTING:
    # The tests flush their Redis database: keep them off the one in use.
    REDIS_URL = redis_url_with_db(REDIS_URL, env_int("HERALD_TEST_REDIS_DB", 15, minimum=0))

# Django's cache (the sign-in throttle's counters) lives in the same Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "herald-cache",
        "TIMEOUT": 300,
    }
}

HERALD_QUEUE = "herald"
# The modules whose periodic jobs `manage.py scheduler` runs (rq cron configs).
HERALD_PERIODIC_JOBS = ["deliveries.cron", "monitoring.cron"]
RQ_QUEUES = {HERALD_QUEUE: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600}}
RQ_SHOW_ADMIN_LINK = True

# --- Auth, sessions, security ---------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    # Thousands of test users sign in: a fast hasher there; the real one elsewhere.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

HERALD_HTTPS = env_bool("HERALD_HTTPS", False)
SESSION_COOKIE_SECURE = HERALD_HTTPS
CSRF_COOKIE_SECURE = HERALD_HTTPS
SECURE_SSL_REDIRECT = HERALD_HTTPS
SECURE_HSTS_SECONDS = 31536000 if HERALD_HTTPS else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HERALD_HTTPS else None
# Probes and scrapers often talk plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_HTTPONLY = True
# The portal works inside the product's iframe, another site: its cookies
# must go with cross-site requests, which browsers allow only for Secure
# cookies (so only under HTTPS); over plain HTTP they stay Lax.
SESSION_COOKIE_SAMESITE = "None" if HERALD_HTTPS else "Lax"
CSRF_COOKIE_SAMESITE = SESSION_COOKIE_SAMESITE
X_FRAME_OPTIONS = "DENY"
# Every page (dashboard/csp.py): nothing inline, nothing from elsewhere, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Static files -----------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing one before collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "herald@localhost")

# --- Herald ------------------------------------------------------------------
# Outbound targets: private/loopback addresses and plain http are refused
# unless these are on (the local demo and the tests turn them on).
HERALD_ALLOW_PRIVATE_TARGETS = env_bool("HERALD_ALLOW_PRIVATE_TARGETS", False)
HERALD_ALLOW_HTTP = env_bool("HERALD_ALLOW_HTTP", False)

# Delay before attempt 1, 2, 3, ... in seconds; beyond the list the last repeats.
HERALD_RETRY_SCHEDULE = env_float_list("HERALD_RETRY_SCHEDULE", "0,5,30,300,3600,21600")
HERALD_RETRY_JITTER = 0.1

HERALD_SWEEP_SECONDS = env_int("HERALD_SWEEP_SECONDS", 30, minimum=1)
HERALD_ALERT_INTERVAL_SECONDS = env_int("HERALD_ALERT_INTERVAL_SECONDS", 60, minimum=1)
HERALD_DISABLE_AFTER_FAILURES = env_int("HERALD_DISABLE_AFTER_FAILURES", 50, minimum=1)
HERALD_DISABLE_AFTER_HOURS = env_int("HERALD_DISABLE_AFTER_HOURS", 24, minimum=0)
# A Slack-compatible incoming webhook that also receives alert notices (optional).
HERALD_SLACK_WEBHOOK_URL = env_str("HERALD_SLACK_WEBHOOK_URL", "")
HERALD_RETENTION_DAYS = env_int("HERALD_RETENTION_DAYS", 30, minimum=1)
# Bearer token for GET /metrics (Prometheus); unset, /metrics answers 404.
HERALD_METRICS_TOKEN = env_str("HERALD_METRICS_TOKEN", "")
HERALD_SECRET_GRACE_HOURS = env_int("HERALD_SECRET_GRACE_HOURS", 24, minimum=0)
HERALD_IDEMPOTENCY_HOURS = 24

# API requests per key per (sliding) window, in two buckets: publishing
# (POST /events, /events/batch) and everything else; platform keys, which act
# for every organization, have their own. Well above what a busy product
# sends (a batch of up to 500 events is one request): they stop a runaway
# client, not a customer's traffic. 0 turns a limit off.
HERALD_API_RATE_LIMIT = env_int("HERALD_API_RATE_LIMIT", 1200, minimum=0)
HERALD_API_PUBLISH_RATE_LIMIT = env_int("HERALD_API_PUBLISH_RATE_LIMIT", 60000, minimum=0)
HERALD_PLATFORM_RATE_LIMIT = env_int("HERALD_PLATFORM_RATE_LIMIT", 6000, minimum=0)
HERALD_PLATFORM_PUBLISH_RATE_LIMIT = env_int(
    "HERALD_PLATFORM_PUBLISH_RATE_LIMIT", 300000, minimum=0
)
HERALD_API_RATE_WINDOW_SECONDS = env_int("HERALD_API_RATE_WINDOW_SECONDS", 60, minimum=1)

# Requests in flight per worker process, and how long one dispatch job keeps
# claiming new work before handing over to a fresh job.
HERALD_WORKER_CONCURRENCY = env_int("HERALD_WORKER_CONCURRENCY", 100, minimum=1)
HERALD_DISPATCH_MAX_SECONDS = env_int("HERALD_DISPATCH_MAX_SECONDS", 30, minimum=1)
# A claimed delivery whose worker died becomes claimable again this long
# after its HTTP timeout would have expired.
HERALD_LEASE_MARGIN_SECONDS = env_int("HERALD_LEASE_MARGIN_SECONDS", 30, minimum=1)

# Platform use (SPEC §10). The address browsers reach Herald at, for the
# portal links the API hands out (unset: the address the API was called at).
HERALD_PUBLIC_URL = env_str("HERALD_PUBLIC_URL", "")
# Who may embed the portal's pages in a frame (CSP frame-ancestors sources,
# space-separated, e.g. "https://app.example.com"); every other page refuses frames.
HERALD_PORTAL_FRAME_ANCESTORS = env_str("HERALD_PORTAL_FRAME_ANCESTORS", "'self'").split()
# The portal's branding: your product's name and accent colour (a CSS colour).
HERALD_PORTAL_TITLE = env_str("HERALD_PORTAL_TITLE", "Webhooks")
HERALD_PORTAL_ACCENT = env_str("HERALD_PORTAL_ACCENT", "#4f46e5")

HERALD_MAX_EVENT_BYTES = 1024 * 1024
HERALD_MAX_BATCH_EVENTS = 500
# A batch's body: its events together (each still at most 1 MiB of data).
HERALD_MAX_BATCH_BYTES = 8 * 1024 * 1024
# At most this many events sent by one replay (its deliveries are written in
# the request): a longer range is refused, asking for a shorter one.
HERALD_REPLAY_MAX_EVENTS = env_int("HERALD_REPLAY_MAX_EVENTS", 10000, minimum=1)
HERALD_MAX_URL_LENGTH = 2048
HERALD_RESPONSE_READ_BYTES = 64 * 1024
HERALD_RESPONSE_STORE_BYTES = 4 * 1024
HERALD_REQUEST_STORE_BYTES = 64 * 1024

# Requests bigger than a batch can be are refused before they are read; the
# API refuses any other body over 1 MiB of data plus JSON framing (413).
HERALD_MAX_REQUEST_BYTES = HERALD_MAX_EVENT_BYTES + 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = HERALD_MAX_BATCH_BYTES + 64 * 1024

if HERALD_DISABLE_AFTER_FAILURES < 1:
    raise ImproperlyConfigured("HERALD_DISABLE_AFTER_FAILURES must be at least 1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "requests_hardened": {"level": "ERROR"},
    },
}
