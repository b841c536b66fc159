"""ClawDirector settings: wiring only, every value from the environment (django-environ).

Every variable is documented in docs/configuration.md and listed in .env.example.
With DEBUG on and no SPRITES_API_TOKEN the project talks to the local Sprites emulator;
in production a missing secret is a system-check error (see clawdirector/checks.py), never a
silent default.
"""

from decimal import Decimal
from pathlib import Path

import environ

from ops.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def env_decimal(name: str, default: str | None) -> Decimal | None:
    """Money and rates are Decimal, never float."""
    value = env.str(name, default="") or default
    return Decimal(value) if value else None


DEBUG = env.bool("DEBUG", default=False)

# Development-only fallbacks; clawdirector.checks rejects them when DEBUG is off.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY if DEBUG else "")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_CREDENTIALS = True
CSRF_FAILURE_VIEW = "sprites.api.errors.csrf_failure"  # JSON under /api/

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_crontab",
    # Durable background work on the project's PostgreSQL (Django 6's tasks framework, backported)
    "django_tasks",
    "django_tasks_db",
    "clawdirector",
    "sprites",
    "heartbeat",
    "console",
    "ops",
]
# Benchmarks, the demo bootstrap and the emulator wrapper: development only, so a production
# `manage.py help` never lists a command that can wipe the ledger.
DEVTOOLS = env.bool("DEVTOOLS", default=DEBUG)
if DEVTOOLS:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    # First: every log line of the request carries its id (and X-Request-ID goes back).
    "ops.middleware.RequestContextMiddleware",
    # /healthz, /readyz, /metrics answered here, before the host check and the HTTPS redirect:
    # probes and scrapers address the container by IP or localhost, over plain HTTP.
    "ops.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, console, Swagger UI) from the app itself, hashed and compressed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "clawdirector.urls"
WSGI_APPLICATION = "clawdirector.wsgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Development only: wait for a concurrent writer instead of failing "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counters, shared by every worker and host: the database, so no new server to run.
# The table is created by a migration (ops/migrations/0001_cache_table.py).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "clawdirector_cache",
        "OPTIONS": {"MAX_ENTRIES": 50000},
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default="") or BASE_DIR / "staticfiles")
# `collectstatic` writes hashed, compressed copies; WhiteNoise serves them with far-future
# caching. With DEBUG on, files are served from the apps as they are (no collectstatic needed).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# SQLite with DEBUG off is refused by check clawdirector.E006 unless this says it is meant.
ALLOW_SQLITE_IN_PRODUCTION = env.bool("ALLOW_SQLITE_IN_PRODUCTION", default=False)

# Production hardening; all of it is inert with DEBUG on.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True

# How many proxies in front of the app append to X-Forwarded-For (a load balancer, a TLS
# terminator…). 0: the socket's peer is the client, and X-Forwarded-For is ignored, so a
# client cannot choose the address its throttles and the metrics allow-list see.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Django REST framework -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PARSER_CLASSES": [
        "sprites.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "sprites.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    # The client address throttles count by: see TRUSTED_PROXY_COUNT.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "sprite_actions": env.str("THROTTLE_SPRITE_ACTIONS", default="30/minute"),
        # devices and status?refresh=1: reads that run work in the sprite or at Sprites.
        "sprite_reads": env.str("THROTTLE_SPRITE_READS", default="60/minute"),
        # Signing in for an API token (per client address): slows password guessing.
        "auth": env.str("THROTTLE_AUTH", default="10/minute"),
        # Signing in to the admin (per client address).
        "admin_login": env.str("THROTTLE_ADMIN_LOGIN", default="10/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ClawDirector API",
    "DESCRIPTION": "One isolated OpenClaw instance per user, each in its own Fly.io Sprite.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Sprites API -------------------------------------------------------------------------
SPRITES_API_TOKEN = env.str("SPRITES_API_TOKEN", default="")
SPRITES_EMULATOR_PORT = env.int("SPRITES_EMULATOR_PORT", default=8765)
# No token and DEBUG on: talk to the local emulator (a banner in `make run` says so).
SPRITES_USE_EMULATOR = DEBUG and not SPRITES_API_TOKEN
SPRITES_API_URL = env.str(
    "SPRITES_API_URL",
    default=f"http://127.0.0.1:{SPRITES_EMULATOR_PORT}" if SPRITES_USE_EMULATOR else "https://api.sprites.dev",
)
if SPRITES_USE_EMULATOR:
    SPRITES_API_TOKEN = "emulator-token"
SPRITES_CONNECT_TIMEOUT = env.float("SPRITES_CONNECT_TIMEOUT", default=5.0)
SPRITES_READ_TIMEOUT = env.float("SPRITES_READ_TIMEOUT", default=30.0)
SPRITES_MAX_RETRIES = env.int("SPRITES_MAX_RETRIES", default=3)
SPRITES_BACKOFF_SECONDS = env.float("SPRITES_BACKOFF_SECONDS", default=0.5)
SPRITES_POOL_CONNECTIONS = env.int("SPRITES_POOL_CONNECTIONS", default=128)

# Background work (set-ups, pool refills, the console's bulk actions) is a task in the database,
# run by `manage.py worker` (docs/operations.md "The task worker"); the web process starts none.
TASKS = {"default": {"BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
                     "QUEUES": ["default", "setup"]}}
# Set-ups running at once across every worker (each holds a sprite running for minutes); a
# provider 429 (its running cap) is retried with backoff, never a failure.
SPRITE_SETUP_CONCURRENCY = env.int("SPRITE_SETUP_CONCURRENCY", default=4)
# A set-up that fails on a transient Sprites error is retried this many times in all, after
# SPRITE_SETUP_RETRY_SECONDS, doubling each time.
SPRITE_SETUP_ATTEMPTS = env.int("SPRITE_SETUP_ATTEMPTS", default=5)
SPRITE_SETUP_RETRY_SECONDS = env.float("SPRITE_SETUP_RETRY_SECONDS", default=15.0)
# A set-up that finds every running slot of the org taken (429 concurrent_sprite_limit_exceeded)
# waits for one, after the API's Retry-After, without spending an attempt, for up to this long.
SPRITE_SETUP_SLOT_WAIT_SECONDS = env.float("SPRITE_SETUP_SLOT_WAIT_SECONDS", default=1800.0)
# Worker processes per `manage.py worker`, and how often each looks for tasks whose worker
# died (sprites/worker.py: a dead worker's task is running again seconds later). A task whose
# worker died TASK_MAX_CLAIMS times fails instead of killing workers forever.
TASK_WORKER_PROCESSES = env.int("TASK_WORKER_PROCESSES", default=4)
TASK_REAP_SECONDS = env.float("TASK_REAP_SECONDS", default=5.0)
TASK_MAX_CLAIMS = env.int("TASK_MAX_CLAIMS", default=5)
# /readyz fails its `tasks` check when the oldest due task has waited longer (no worker?).
TASK_QUEUE_ALERT_SECONDS = env.int("TASK_QUEUE_ALERT_SECONDS", default=300)
# A `provisioning` row with no queued or running task and untouched for this long (a lost
# task) is set up again by the heartbeat's side job.
SPRITE_PROVISION_STUCK_SECONDS = env.int("SPRITE_PROVISION_STUCK_SECONDS", default=120)
SPRITE_NAME_PREFIX = env.str("SPRITE_NAME_PREFIX", default="claw-")
# A fleet that heals (issue 14; docs/operations.md "A fleet that heals").
# Reconciliation: a sprite at the provider with no row is destroyed only once it is this old
# (a crash between the two is seconds; a restored database backup is not an excuse to wait).
RECONCILE_ORPHAN_GRACE_SECONDS = env.int("RECONCILE_ORPHAN_GRACE_SECONDS", default=3600)
# The sweep reconciles at most this often (0 = never on schedule: the command and the console
# only); on schedule it applies the safe rules, and destroys orphans only with the next one on.
RECONCILE_EVERY_MINUTES = env.int("RECONCILE_EVERY_MINUTES", default=60)
RECONCILE_DESTROY_ON_SCHEDULE = env.bool("RECONCILE_DESTROY_ON_SCHEDULE", default=False)
# A set-up resumed this many times by reconciliation is failed (`error`) instead of resumed.
RECONCILE_MAX_RESUMES = env.int("RECONCILE_MAX_RESUMES", default=3)
# Verify after wake: GET <sprite URL>/startupz after each heartbeat turn and start.
GATEWAY_VERIFY = env.bool("GATEWAY_VERIFY", default=True)
GATEWAY_VERIFY_TIMEOUT_SECONDS = env.float("GATEWAY_VERIFY_TIMEOUT_SECONDS", default=5.0)
# After a restart or a restore, how long the gateway may take to answer 200 (~17 s measured).
GATEWAY_VERIFY_WAIT_SECONDS = env.float("GATEWAY_VERIFY_WAIT_SECONDS", default=45.0)
# Known-good checkpoints: one after a verified heartbeat at most this often; the last N kept.
HEAL_CHECKPOINT_EVERY_HOURS = env.int("HEAL_CHECKPOINT_EVERY_HOURS", default=24)
HEAL_KEEP_CHECKPOINTS = env.int("HEAL_KEEP_CHECKPOINTS", default=3)
# Sprites healed (restart, restore) per sweep, so a broken fleet never stalls the sweep.
HEAL_PER_SWEEP = env.int("HEAL_PER_SWEEP", default=50)
SPRITE_POOL_SIZE = env.int("SPRITE_POOL_SIZE", default=2)
SPRITE_NETWORK_ALLOW = env.list(
    "SPRITE_NETWORK_ALLOW",
    default=["api.anthropic.com", "api.openai.com", "registry.npmjs.org", "openclaw.ai"],
)
GATEWAY_TOKEN_ENCRYPTION_KEY = env.str("GATEWAY_TOKEN_ENCRYPTION_KEY", default="")

# --- Model access (docs/configuration.md "Model access"): each sprite gets its OWN model
# credential, rendered into its openclaw.json as a custom provider; a platform-wide key never
# enters a sprite. MODEL_ACCESS: "" (none: the demo; the console says so), "litellm" (a
# virtual key per sprite minted on the LiteLLM proxy with the master key, which stays here) or
# "byo" (the user's own provider key, set through the API, stored encrypted).
MODEL_ACCESS = env.str("MODEL_ACCESS", default="")
MODEL_PROXY_URL = env.str("MODEL_PROXY_URL", default="")  # LiteLLM's base URL (its key API)
MODEL_PROXY_MASTER_KEY = env.str("MODEL_PROXY_MASTER_KEY", default="")  # never leaves ClawDirector
MODEL_PROXY_TIMEOUT_SECONDS = env.float("MODEL_PROXY_TIMEOUT_SECONDS", default=10.0)
# What a sprite's agents use: OpenClaw's `models.providers.<MODEL_PROVIDER_ID>` with one model,
# `agents.defaults.model.primary` = "<provider>/<model id>", prices in USD per million tokens
# (OpenClaw computes each turn's costUsd from them).
MODEL_PROVIDER_ID = env.str("MODEL_PROVIDER_ID", default="clawdirector")
MODEL_ID = env.str("MODEL_ID", default="gpt-4o-mini")
MODEL_NAME = env.str("MODEL_NAME", default="GPT-4o mini")
MODEL_API = env.str("MODEL_API", default="openai-completions")
MODEL_PRICE_INPUT = env_decimal("MODEL_PRICE_INPUT", "0.15")
MODEL_PRICE_OUTPUT = env_decimal("MODEL_PRICE_OUTPUT", "0.6")
MODEL_PRICE_CACHE_READ = env_decimal("MODEL_PRICE_CACHE_READ", "0.075")
MODEL_PRICE_CACHE_WRITE = env_decimal("MODEL_PRICE_CACHE_WRITE", "0")
MODEL_CONTEXT_WINDOW = env.int("MODEL_CONTEXT_WINDOW", default=128000)
MODEL_MAX_TOKENS = env.int("MODEL_MAX_TOKENS", default=4096)
# Each LiteLLM key's budget (max_budget; soft_budget warns) per MODEL_BUDGET_DURATION.
MODEL_BUDGET_USD = env_decimal("MODEL_BUDGET_USD", "20")
MODEL_SOFT_BUDGET_USD = env_decimal("MODEL_SOFT_BUDGET_USD", "15")
MODEL_BUDGET_DURATION = env.str("MODEL_BUDGET_DURATION", default="30d")

# --- OpenClaw (pinned; see ../shared/openclaw.md and sprites/openclaw/) -----------------------
# A release npm serves, and a Node inside its declared engines (sprites/openclaw/engines.json
# ships the range; check clawdirector.E005 compares them, with no network).
OPENCLAW_VERSION = env.str("OPENCLAW_VERSION", default="2026.9.6")
OPENCLAW_NODE_VERSION = env.str("OPENCLAW_NODE_VERSION", default="24.22.3")
OPENCLAW_GATEWAY_PORT = env.int("OPENCLAW_GATEWAY_PORT", default=8080)
OPENCLAW_AGENT_ID = env.str("OPENCLAW_AGENT_ID", default="main")
OPENCLAW_ALLOWED_ORIGINS = env.list("OPENCLAW_ALLOWED_ORIGINS", default=[])
# gateway.trustedProxies: addresses (IP or CIDR) whose X-Forwarded-For the gateway believes.
# The sprite URL reaches the gateway through the Sprites router from loopback; without this
# every proxied request gets 403 proxy_attribution_required (openclaw.md).
# Sized from the real 2026.9.6 gateway on 2 cores (tests/fixtures/openclaw/2026.9.6/README.md):
# /startupz answers 200 after 8-15 s (17-18 s reported), plus a cold sprite's wake; an invalid
# config exits 78 after 1.6-4.3 s. The heartbeat and set-up wait this long for /startupz, and
# set-up watches the service this long for an exit.
OPENCLAW_STARTUP_WAIT_SECONDS = env.int("OPENCLAW_STARTUP_WAIT_SECONDS", default=45)
OPENCLAW_FAILURE_WINDOW_SECONDS = env.float("OPENCLAW_FAILURE_WINDOW_SECONDS", default=6.0)
OPENCLAW_TRUSTED_PROXIES = env.list("OPENCLAW_TRUSTED_PROXIES", default=["127.0.0.1/32", "::1/128"])

# --- Heartbeat and metering -----------------------------------------------------------------
CRON_SECRET = env.str("CRON_SECRET", default="")
HEARTBEAT_SCHEDULE = env.str("HEARTBEAT_SCHEDULE", default="* * * * *")  # a tick a minute
HEARTBEAT_INTERVAL_MINUTES = env.int("HEARTBEAT_INTERVAL_MINUTES", default=15)
HEARTBEAT_TIMEOUT_SECONDS = env.int("HEARTBEAT_TIMEOUT_SECONDS", default=180)
HEARTBEAT_CONCURRENCY = env.int("HEARTBEAT_CONCURRENCY", default=64)
# What runs in each sprite for one heartbeat turn; empty = sprites.openclaw's default (wait
# for the gateway's /startupz, then one `openclaw agent … --json` turn, bounded by `timeout`).
HEARTBEAT_COMMAND = env.str("HEARTBEAT_COMMAND", default="")
# Per-sprite wake records older than this are pruned at the end of each sweep.
HEARTBEAT_WAKE_RETENTION_DAYS = env.int("HEARTBEAT_WAKE_RETENTION_DAYS", default=30)
# Finished background-task results (the admin's Task results) older than this are deleted by
# the heartbeat's hourly housekeeping.
TASK_RESULT_RETENTION_DAYS = env.int("TASK_RESULT_RETENTION_DAYS", default=7)
SPRITE_IDLE_SECONDS = env.int("SPRITE_IDLE_SECONDS", default=30)
# How often `manage.py sample_usage --loop` reads the VM states to bill user sessions; the
# sampling error per session is at most half of it (docs/cost-model.md, "User sessions").
USAGE_SAMPLE_SECONDS = env.int("USAGE_SAMPLE_SECONDS", default=60)
# The projection's turn length for a sprite with no measured heartbeat yet (the guide's 2 min).
COST_DEFAULT_TURN_SECONDS = env.int("COST_DEFAULT_TURN_SECONDS", default=120)
SPRITE_ACTIVE_USD_PER_HOUR = env_decimal("SPRITE_ACTIVE_USD_PER_HOUR", "0.18")
SPRITE_STORAGE_USD_PER_GB_HOUR = env_decimal("SPRITE_STORAGE_USD_PER_GB_HOUR", "0.0003")
SPRITE_STORAGE_GB = env_decimal("SPRITE_STORAGE_GB", "10")
# Budgets that act (docs/cost-model.md "Budgets"): each user's monthly budget (a sprite's own,
# set by staff, else this default; unset = none), the warning threshold, the fleet's monthly cap.
SPRITE_MONTHLY_BUDGET_USD = env_decimal("SPRITE_MONTHLY_BUDGET_USD", None)
BUDGET_WARN_PERCENT = env.int("BUDGET_WARN_PERCENT", default=80)
FLEET_MONTHLY_CAP_USD = env_decimal("FLEET_MONTHLY_CAP_USD", None)
COST_LOCAL_CURRENCY = env.str("COST_LOCAL_CURRENCY", default="")
COST_LOCAL_PER_USD = env_decimal("COST_LOCAL_PER_USD", None)

# A dead man's switch (healthchecks.io, Cronitor, Dead Man's Snitch…): GET after every full
# sweep, to this URL when it succeeded and to the fail URL (default: this URL + "/fail", the
# healthchecks.io convention) when it did not. Both are secrets: never logged.
HEARTBEAT_PING_URL = env.str("HEARTBEAT_PING_URL", default="")
HEARTBEAT_PING_FAIL_URL = env.str("HEARTBEAT_PING_FAIL_URL", default="")

# django-crontab (the systemd timer in deploy/ is the first choice: docs/operations.md). Its
# `crontab run` swallows every exception and exits 0; heartbeat.cron.run keeps the command's
# exit status and sends the output to syslog (journald on systemd hosts), never a file in /tmp.
CRONJOBS = [(HEARTBEAT_SCHEDULE, "heartbeat.cron.run", [], {},
             env.str("HEARTBEAT_CRON_SUFFIX", default="2>&1 | logger -t clawdirector-heartbeat"))]
CRONTAB_COMMAND_PREFIX = env.str("CRONTAB_COMMAND_PREFIX", default="")

# --- Notifications (docs/operations.md "Notifications"): email to ADMINS through Django's mail
# and/or a webhook POST signed with HMAC-SHA256, sent by the task worker with retries.
ADMINS = [(address, address) for address in env.list("ADMINS", default=[])]
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="clawdirector@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_SUBJECT_PREFIX = env.str("EMAIL_SUBJECT_PREFIX", default="[ClawDirector] ")
NOTIFY_WEBHOOK_URL = env.str("NOTIFY_WEBHOOK_URL", default="")
NOTIFY_WEBHOOK_SECRET = env.str("NOTIFY_WEBHOOK_SECRET", default="")
NOTIFY_WEBHOOK_TIMEOUT_SECONDS = env.float("NOTIFY_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
NOTIFY_ATTEMPTS = env.int("NOTIFY_ATTEMPTS", default=5)
NOTIFY_RETRY_SECONDS = env.float("NOTIFY_RETRY_SECONDS", default=30.0)

# --- Operations: /metrics --------------------------------------------------------------------
# Who may scrape /metrics: a bearer secret (Prometheus `authorization: credentials:`), and/or
# client addresses or networks (comma-separated, e.g. 10.0.0.0/8,127.0.0.1). Neither set: 503.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

# --- Logging: to the process's streams (journald, docker logs), plain or one JSON object a
# line, each with its request id and sprite id; a filter redacts secrets (ops/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = logging_config(level=env.str("LOG_LEVEL", default="INFO"), fmt=LOG_FORMAT)
