"""Settings for the ZOS control plane, read from the environment.

Every variable is documented in docs/configuration.md. The defaults run one box with no extra
services: SQLite under var/, an in-memory channel layer, DEBUG off.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
import redis
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ZOS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """A per-installation key kept in var/, so one box needs no configuration and stays safe."""
    if key := os.environ.get("ZOS_SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("ZOS_DEBUG")
ALLOWED_HOSTS = os.environ.get("ZOS_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("ZOS_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

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
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "csp",
    "axes",
    "ledger",
    "coordinator",
    "accounts",
    "hub",
    "dashboard",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "ops.metrics.RequestMetricsMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "grid.api_errors.ServiceErrorMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "grid.urls"
ASGI_APPLICATION = "grid.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'zos.sqlite3'}"),
        conn_max_age=int(os.environ.get("ZOS_DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (ASGI server, workers, management commands) share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# PostgreSQL: a pool of open connections per process (psycopg_pool, ZOS_DB_POOL_MAX at most), so
# a request borrows a connection instead of opening one. Under ASGI every request runs in a thread
# of its own, so persistent connections (ZOS_DB_CONN_MAX_AGE) are never reused; opening one per
# request cost PostgreSQL a backend start and its catalog reads each time (docs/performance.md).
DB_POOL_MAX = int(os.environ.get("ZOS_DB_POOL_MAX", "0"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses a pool with persistent connections
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX,
        # Seconds a request waits for a free connection before it is answered 503. Also how
        # long a request waits while PostgreSQL is down (the pool does not fail its waiters when
        # it cannot connect), so it is short: a client gets its 503 instead of hanging.
        "timeout": float(os.environ.get("ZOS_DB_POOL_TIMEOUT", "5")),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# Messages a socket's channel may hold before new ones are dropped (Channels defaults to 100):
# a burst of deployments sends each owner five events apiece.
CHANNEL_CAPACITY = int(os.environ.get("ZOS_CHANNEL_CAPACITY", "5000"))
# A pooled Redis connection that Redis dropped (it restarted) fails its next command; redis-py
# retries nothing by default, so that command failed: after a restart of the control-plane Redis
# each worker's first group_add/group_send refused a live feed or a node's link (HTTP 500 at the
# WebSocket handshake) and its first signed node request failed. One immediate retry on a fresh
# connection is what fixes a stale one; while Redis is really down the retry fails as fast.
_REDIS_RETRY = {"retry_on_error": [redis.ConnectionError]}
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "grid.channel_layer.BlockingPoolRedisChannelLayer",
            "CONFIG": {
                # Above channels_redis's 5 s blocking receive: redis-py 8's default read timeout
                # is also 5 s, and every idle socket failed with a TimeoutError (1011) at it.
                # At most 100 connections a process; a command waits up to 30 s for one.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "max_connections": 100,
                        "timeout": 30,
                        **_REDIS_RETRY,
                    }
                ],
                "capacity": CHANNEL_CAPACITY,
            },
        }
    }
    # Redis expires each nonce itself and never evicts one (its default maxmemory-policy).
    _nonce_cache = {
        "BACKEND": "grid.redis_cache.SharedPoolRedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": _REDIS_RETRY,
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }
    # In the database, so a replayed nonce is caught across processes and restarts.
    # Never culled: dropping a live nonce would reopen a replay window.
    _nonce_cache = {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "zos_nonce_cache",
        "OPTIONS": {"MAX_ENTRIES": 10_000_000, "CULL_FREQUENCY": 0},
    }
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "nonces": _nonce_cache,
}

# django-axes checks every authenticate() first (browser sign-in, admin login, POST auth/token).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Bodies above this size are refused with 413 before anything is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("ZOS_MAX_BODY_BYTES", str(1024 * 1024)))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["grid.json_input.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "grid.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "grid.api_errors.exception_handler",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "ZOS grid API",
    "DESCRIPTION": "Ledger (farms, nodes, user keys) and coordinator of the ZOS grid.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "grid.schema_hooks.document_errors",
    ],
}

# How often nodes report uptime; a node is offline after OFFLINE_AFTER_INTERVALS missed reports.
ZOS_UPTIME_INTERVAL = int(os.environ.get("ZOS_UPTIME_INTERVAL", "60"))
ZOS_OFFLINE_AFTER_INTERVALS = 3
ZOS_COORDINATOR_KEY_FILE = Path(
    os.environ.get("ZOS_COORDINATOR_KEY_FILE", VAR_DIR / "coordinator.key")
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ZOS_LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# Jobs: a dispatch not accepted within ZOS_JOB_ACK_TIMEOUT is retried; a run may take `timeout`.
ZOS_JOB_ACK_TIMEOUT = int(os.environ.get("ZOS_JOB_ACK_TIMEOUT", "60"))
ZOS_JOB_TIMEOUT = int(os.environ.get("ZOS_JOB_TIMEOUT", "300"))
ZOS_JOB_MAX_ATTEMPTS = int(os.environ.get("ZOS_JOB_MAX_ATTEMPTS", "3"))
ZOS_RETRY_BASE = float(os.environ.get("ZOS_RETRY_BASE", "5"))
# How often a process looks for work other processes queued for the links it holds (seconds).
ZOS_LINK_POLL = float(os.environ.get("ZOS_LINK_POLL", "2"))
# Liveness of node links (application level: works behind any ASGI server and proxy). A node
# sends a `beat` every interval (agents older than beats are pinged at it instead) and a link
# silent for interval + timeout is marked down: 25 s by default, a dead node noticed within
# ~30 s while 1,000 idle links cost 100 small messages a second (docs/performance.md). Seconds.
ZOS_LINK_PING_INTERVAL = float(os.environ.get("ZOS_LINK_PING_INTERVAL", "10"))
ZOS_LINK_PING_TIMEOUT = float(os.environ.get("ZOS_LINK_PING_TIMEOUT", "15"))

# Boot images, per-farm stamped copies, and signed agent releases (docs/updates.md).
ZOS_BOOT_DIR = Path(os.environ.get("ZOS_BOOT_DIR", VAR_DIR / "boot"))
ZOS_RELEASE_DIR = Path(os.environ.get("ZOS_RELEASE_DIR", VAR_DIR / "releases"))
ZOS_RELEASE_KEY_FILE = Path(os.environ.get("ZOS_RELEASE_KEY_FILE", VAR_DIR / "release.key"))
# The ledger's URL as nodes reach it (baked into boot images). Never taken from a request's Host
# header: that let anyone choose the URL stamped into a farm's images and fill the disk with
# copies. Default: where scripts/up serves.
ZOS_PUBLIC_URL = (
    os.environ.get("ZOS_PUBLIC_URL") or f"http://127.0.0.1:{os.environ.get('ZOS_PORT', '8000')}"
).rstrip("/")
if not ZOS_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"ZOS_PUBLIC_URL={ZOS_PUBLIC_URL!r} must start with http:// or https:// "
        "(the ledger's URL as nodes reach it, e.g. https://grid.example.com)"
    )
# The image hub (docs/images.md): published image parts as content-addressed files, and the
# largest part a user may upload (a VM disk template is the big one).
ZOS_BLOB_DIR = Path(os.environ.get("ZOS_BLOB_DIR", VAR_DIR / "blobs"))
ZOS_MAX_BLOB_BYTES = int(os.environ.get("ZOS_MAX_BLOB_BYTES", str(64 * 2**30)))
# Stamped copies of a farm's boot files kept on disk; older command lines/images are evicted.
ZOS_BOOT_STAMPED_KEEP = int(os.environ.get("ZOS_BOOT_STAMPED_KEEP", "2"))
# The enrollment token baked into each farm's boot images: uses and lifetime before renewal.
ZOS_BOOT_TOKEN_USES = int(os.environ.get("ZOS_BOOT_TOKEN_USES", "1000"))
ZOS_BOOT_TOKEN_DAYS = int(os.environ.get("ZOS_BOOT_TOKEN_DAYS", "365"))

# Script compiles run in worker processes (coordinator/compile_pool.py): how many at once, the
# time and address-space limits of one compile, and how many compiles before a worker is renewed.
ZOS_COMPILE_WORKERS = int(os.environ.get("ZOS_COMPILE_WORKERS", "2"))
ZOS_COMPILE_TIMEOUT = float(os.environ.get("ZOS_COMPILE_TIMEOUT", "5"))
ZOS_COMPILE_MEMORY_MB = int(os.environ.get("ZOS_COMPILE_MEMORY_MB", "512"))
ZOS_COMPILE_MAX_TASKS = int(os.environ.get("ZOS_COMPILE_MAX_TASKS", "200"))
# The check a compile worker runs (tests substitute deliberately slow or greedy ones).
ZOS_SCRIPT_CHECK = "contracts.scripts.check_script"

# /metrics answers only `Authorization: Bearer <this>`; unset, the endpoint is off (404).
# With several ASGI workers also set PROMETHEUS_MULTIPROC_DIR (docs/operations.md).
ZOS_METRICS_TOKEN = os.environ.get("ZOS_METRICS_TOKEN", "")

# The browser side (dashboard/): sessions, sign-in throttling, and the security headers.
LOGIN_URL = "dashboard:sign-in"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:home"
# Served over TLS (directly or by a proxy): cookies then travel over HTTPS only.
ZOS_HTTPS = _env_bool("ZOS_HTTPS")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = ZOS_HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
# Pages hand the CSRF token to their scripts in a <meta> tag, so no script needs the cookie.
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# No inline scripts or styles anywhere: a script injected into a page cannot run.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Failed sign-ins, counted per username and address in the database (every process sees them):
# after AXES_FAILURE_LIMIT the pair is locked out for the cool-off, which restarts on each try.
AXES_FAILURE_LIMIT = int(os.environ.get("ZOS_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("ZOS_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "dashboard/locked_out.html"
AXES_VERBOSE = False
