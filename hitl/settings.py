"""Settings, all from environment variables.

With nothing set the project runs as an embedded demo: DEBUG on, SQLite in the
project folder, Celery tasks executed in-process, and a generated development
secret key. Production sets ``DEBUG=0``, ``SECRET_KEY``, ``ALLOWED_HOSTS``,
``DATABASE_URL`` and ``CELERY_BROKER_URL``; it refuses to start without a real
secret key.
"""

import base64
import hashlib
import os
import secrets
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from error


DEBUG = env_bool("DEBUG", default=True)


def _development_secret_key() -> str:
    """A per-checkout key kept in a git-ignored file, so sessions survive restarts."""
    path = BASE_DIR / ".dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _development_secret_key()

# Keys that encrypt tenants' secrets at rest (judge API keys, webhook signing secrets;
# hitl/crypto.py): comma-separated Fernet keys, the first encrypts, every one decrypts,
# so a key is rotated by putting the new one first and running `manage.py rotate_secrets`.
# Under DEBUG with none set, a development key is derived from SECRET_KEY.
HITL_SECRET_KEYS = env_list("HITL_SECRET_KEYS", [])
if not HITL_SECRET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "HITL_SECRET_KEYS must be set when DEBUG is off: comma-separated Fernet keys, made with "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
        )
    HITL_SECRET_KEYS = [
        base64.urlsafe_b64encode(hashlib.sha256(b"hitl-secret-keys\0" + SECRET_KEY.encode()).digest()).decode()
    ]
for _position, _key in enumerate(HITL_SECRET_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"HITL_SECRET_KEYS: key {_position} is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from None

# The Ed25519 key that signs audit checkpoints (tenants/audit.py): base64 of a 32-byte raw
# seed, from the environment only, never the database. Under DEBUG with none set, one is
# derived from SECRET_KEY (the audit module warns that such checkpoints prove nothing).
HITL_AUDIT_SIGNING_KEY = os.environ.get("HITL_AUDIT_SIGNING_KEY", "")
HITL_AUDIT_SIGNING_KEY_DERIVED = not HITL_AUDIT_SIGNING_KEY
if not HITL_AUDIT_SIGNING_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "HITL_AUDIT_SIGNING_KEY must be set when DEBUG is off: base64 of a 32-byte Ed25519 seed, made with "
            '`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`.'
        )
    HITL_AUDIT_SIGNING_KEY = base64.b64encode(
        hashlib.sha256(b"hitl-audit-signing-key\0" + SECRET_KEY.encode()).digest()
    ).decode()
try:
    if len(base64.b64decode(HITL_AUDIT_SIGNING_KEY, validate=True)) != 32:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured("HITL_AUDIT_SIGNING_KEY: not base64 of 32 bytes (an Ed25519 seed).") from None

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our static files, not a CDN
    "simple_history",
    "guardian",
    "django_htmx",
    "csp",
    "hitl",
    "tenants",
    "policies",
    "reviews",
    "quality",
]

MIDDLEWARE = [
    "hitl.tenancy.TenancyMiddleware",  # every request starts with no tenant (row-level security, hitl/tenancy.py)
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "tenants.middleware.AuditActorMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

if not DEBUG:  # runserver serves static files itself under DEBUG
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "hitl.urls"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
GUARDIAN_RAISE_403 = False
# Reverting from a history page would bypass the services' validation and versioning.
SIMPLE_HISTORY_REVERT_DISABLED = True
ANONYMOUS_USER_NAME = None  # no anonymous user row: nothing is granted to anonymous callers
WSGI_APPLICATION = "hitl.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "hitl" / "templates"],
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
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# The PostgreSQL role the application runs as (it SET ROLEs to it on each connection):
# neither superuser nor owner nor BYPASSRLS, so row-level security holds. Migrations run
# as the connecting user, who owns the tables, and create this role. Empty: no switch
# (when DATABASE_URL already logs in as such a role).
DATABASE_APP_ROLE = os.environ.get("DATABASE_APP_ROLE", "hitl_app").strip()
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend plus the tenant of each transaction for row-level security (hitl/postgres).
    DATABASES["default"]["ENGINE"] = "hitl.postgres"
    # Server-side binding sends parameters apart from the SQL (no client-side quoting),
    # which is several times cheaper for ingest's array parameters.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
    # psycopg prepares a statement once it has run this many times on a connection, so
    # the claim and the review are planned once per connection instead of on every call
    # (about a third of PostgreSQL's CPU for a claim and a review, bench/claim). Django
    # turns this off by default for transaction-mode poolers: set it to "off" behind one
    # that does not track prepared statements (PgBouncer before 1.21).
    _prepare = os.environ.get("DATABASE_PREPARE_THRESHOLD", "").strip().lower()
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
        None if _prepare == "off" else env_int("DATABASE_PREPARE_THRESHOLD", 5)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite is the embedded default: WAL and a busy timeout let the dev server
    # and an in-process task write at the same time without "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }

# A read replica for auditors' reads (the compliance export, the auditor's searches), so that
# they never slow ingest and claims: those read through the ``replica`` alias when it is set.
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = {
        **dj_database_url.parse(
            os.environ["DATABASE_REPLICA_URL"], conn_max_age=env_int("CONN_MAX_AGE", 60), conn_health_checks=True
        ),
        "OPTIONS": dict(DATABASES["default"].get("OPTIONS", {})),
        # Tests run against one database: the replica's test alias reads the default's.
        "TEST": {"MIRROR": "default"},
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "tenants:login"  # people sign in on /login/; staff may also use the admin's own login
LOGIN_REDIRECT_URL = "tenants:home"  # each role's own home
LOGOUT_REDIRECT_URL = "tenants:login"
# Password-reset mail: printed on the console unless an SMTP server is configured.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "hitl@localhost")

# Request size: a batch of 1000 outputs with their traces fits; anything larger is
# refused with a 400 naming the body before it is read into memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("HITL_MAX_BODY_BYTES", 32 * 1024 * 1024)

# Security. Production (DEBUG off) gets HTTPS-only cookies, HSTS and an SSL redirect;
# a deployment behind a TLS-terminating proxy sets SECURE_PROXY_SSL_HEADER=1.
SECURE_CONTENT_TYPE_NOSNIFF = True
# A strict Content-Security-Policy on every response: scripts and styles only from our own
# static files (no inline script, no eval; htmx is configured by a meta tag to need neither).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if env_bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["hitl.permissions.TenantRolePermission"],
    "DEFAULT_PARSER_CLASSES": ["hitl.json.OrjsonParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "hitl.negotiation.CachedContentNegotiation",
    "DEFAULT_RENDERER_CLASSES": ["hitl.json.OrjsonRenderer", "rest_framework.renderers.BrowsableAPIRenderer"]
    if DEBUG
    else ["hitl.json.OrjsonRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hitl.api_errors.exception_handler",
    "DEFAULT_METADATA_CLASS": None,  # OPTIONS answers 405 instead of describing serializers
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "HITL governance API",
    "DESCRIPTION": (
        "Human-in-the-loop governance of LLM outputs. Every request carries "
        "`Authorization: Bearer <api key>`; a key belongs to one tenant and has a role. "
        "Errors share one JSON shape: `code`, `message` and, for validation errors, `fields`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "OAS_VERSION": "3.1.0",
    "ENUM_NAME_OVERRIDES": {
        "ReviewModeEnum": ["sequential", "parallel", "adaptive"],
        "OverrideModeEnum": ["review_all", "block", "none"],
        "CriterionKindEnum": ["binary", "graded", "categorical", "text"],
        "JudgeKindEnum": ["llm", "pii", "banned", "length", "json_schema", "disclaimer"],
        "VerdictEnum": ["approve", "reject", "correct"],
    },
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # The docs pages load their scripts, styles and icon from this application's static
    # files (drf-spectacular-sidecar), so they work offline and send nothing to a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: a real broker when configured, otherwise every task runs in-process.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE: dict = {
    "release-expired-leases": {"task": "reviews.tasks.tasks_release_expired_task", "schedule": 30.0},
    "sweep-webhooks": {"task": "reviews.tasks.webhook_sweep_task", "schedule": 15.0},
    "reconcile-judges": {"task": "reviews.tasks.judges_reconcile_task", "schedule": 30.0},
    # Retention (reviews.services.retention): hourly; each run redacts only what aged since the last.
    "apply-retention": {"task": "reviews.tasks.retention_apply_task", "schedule": 3600.0},
    "audit-checkpoints": {"task": "tenants.tasks.audit_checkpoints_task", "schedule": 600.0},
    "sla-breaches": {"task": "reviews.tasks.tasks_sla_sweep_task", "schedule": 60.0},
    "resume-compliance-exports": {"task": "reviews.tasks.compliance_exports_resume_task", "schedule": 300.0},
    # Judges kept honest (quality.services.judges_agreement_check): hourly, idempotent.
    "judges-agreement": {"task": "quality.tasks.judges_agreement_check_task", "schedule": 3600.0},
    # The metrics rollups (quality/rollups.py): each run rebuilds only the hours that changed.
    "metrics-rollup": {"task": "quality.tasks.metrics_rollup_task", "schedule": 120.0},
    # Outlier signals (reviews.services.signals): fold new outputs into each application's sketches.
    "signal-statistics": {"task": "reviews.tasks.signal_statistics_refresh_task", "schedule": 60.0},
    # Certifications past their period become expired (reviews.services.gold): idempotent.
    "expire-certifications": {"task": "reviews.tasks.certifications_expire_task", "schedule": 300.0},
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("REDIS_CACHE_URL"):
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_CACHE_URL"],
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Brute force (hitl/ratelimit.py): failed API key checks and sign-ins allowed per client
# address and per account (key prefix, username) within a minute before 429 + Retry-After;
# behind proxies that append to X-Forwarded-For, how many of them to trust for the address.
HITL_AUTH_FAILURES_PER_MINUTE = env_int("HITL_AUTH_FAILURES_PER_MINUTE", 10)
HITL_TRUSTED_PROXY_COUNT = env_int("HITL_TRUSTED_PROXY_COUNT", 0)

# Ingest limits, part of the public contract (documented in the OpenAPI schema).
HITL_BATCH_MAX_ITEMS = 1000
HITL_API_KEY_TOUCH_SECONDS = 60
# How long a web process remembers a key it looked up, so that POST /api/v1/outputs (most
# services' one call per LLM answer) skips the lookup's round trip: its write statement
# confirms the key instead, in the same snapshot (tenants.selectors.api_key_guard), so a
# revoked key stops at once whatever this says. 0: every request looks its key up.
HITL_API_KEY_CACHE_SECONDS = env_int("HITL_API_KEY_CACHE_SECONDS", 30)
# Review leases: how long a claimed task stays with its reviewer.
HITL_LEASE_SECONDS = env_int("HITL_LEASE_SECONDS", 15 * 60)
# Webhook deliveries: attempts before a delivery is marked failed, first backoff.
HITL_WEBHOOK_MAX_ATTEMPTS = env_int("HITL_WEBHOOK_MAX_ATTEMPTS", 8)
HITL_WEBHOOK_TIMEOUT_SECONDS = env_int("HITL_WEBHOOK_TIMEOUT_SECONDS", 10)
HITL_WEBHOOK_BACKOFF_SECONDS = env_int("HITL_WEBHOOK_BACKOFF_SECONDS", 10)
# Webhooks to addresses that are not globally routable (SSRF guard, hitl/net.py); allowed in development.
HITL_WEBHOOK_ALLOW_PRIVATE = env_bool("HITL_WEBHOOK_ALLOW_PRIVATE", default=DEBUG)
# Automated judges: LLM endpoints on addresses that are not globally routable (as for webhooks),
# and after how long an output still waiting for verdicts is enqueued again.
HITL_JUDGE_ALLOW_PRIVATE = env_bool("HITL_JUDGE_ALLOW_PRIVATE", default=DEBUG)
# Longer than a judge task's time limit (300 s), so that a running task is not enqueued again.
HITL_JUDGE_RECONCILE_SECONDS = env_int("HITL_JUDGE_RECONCILE_SECONDS", 6 * 60)
# Policy, judge and rubric documents: the most one may weigh, serialized (each process keeps
# compiled forms of them), and the most each per-process configuration cache holds, weighed
# by the serialized size of the documents and rows its entries were built from (hitl/cache.py).
HITL_MAX_CONFIG_BYTES = env_int("HITL_MAX_CONFIG_BYTES", 256 * 1024)
HITL_CACHE_MAX_BYTES = env_int("HITL_CACHE_MAX_BYTES", 8 * 1024 * 1024)
# Reviewer quality (issue 13; docs/quality.md). Agreement: a criterion whose Krippendorff's alpha
# is below this is flagged (Krippendorff 2004, p. 241: below .667 not even tentative conclusions),
# over at least this many units. Adjudication: graded scores further apart than this disagree.
HITL_AGREEMENT_LOW_ALPHA = float(os.environ.get("HITL_AGREEMENT_LOW_ALPHA", "0.667"))
HITL_AGREEMENT_MIN_UNITS = env_int("HITL_AGREEMENT_MIN_UNITS", 10)
HITL_ADJUDICATION_TOLERANCE = env_int("HITL_ADJUDICATION_TOLERANCE", 1)
# Judges against people: a judge version whose Cohen's kappa over the last window falls below
# the threshold (Landis and Koch 1977: 0.40 and below is "fair" at best), over enough verdicts,
# is flagged; while flagged, outputs it passes are reviewed at the sample rate at least (empty: off).
HITL_JUDGE_FLAG_BELOW_KAPPA = float(os.environ.get("HITL_JUDGE_FLAG_BELOW_KAPPA", "0.4"))
HITL_JUDGE_FLAG_MIN_COMPARED = env_int("HITL_JUDGE_FLAG_MIN_COMPARED", 20)
HITL_JUDGE_FLAG_WINDOW_DAYS = env_int("HITL_JUDGE_FLAG_WINDOW_DAYS", 30)
_flag_rate = os.environ.get("HITL_JUDGE_FLAG_SAMPLE_RATE", "")
HITL_JUDGE_FLAG_SAMPLE_RATE = float(_flag_rate) if _flag_rate else None
# Outlier signals: how long a process keeps a tenant's application statistics before reading
# the newest version (policies.selectors.application_statistics).
HITL_SIGNAL_STATISTICS_SECONDS = env_int("HITL_SIGNAL_STATISTICS_SECONDS", 60)
# Where compliance bundles (zip files) are written, one directory per tenant; never commit it.
HITL_EXPORT_DIR = os.environ.get("HITL_EXPORT_DIR") or str(BASE_DIR / "var" / "exports")
