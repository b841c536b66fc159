"""Start-up checks: a production configuration without its secrets never starts quietly."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security, deploy=False)
def check_production_secrets(app_configs=None, **kwargs):
    if settings.DEBUG:
        return []
    errors = []
    try:
        secret_key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        secret_key = ""
    if not secret_key or secret_key == settings.DEV_SECRET_KEY:
        errors.append(
            Error("SECRET_KEY is not set.", hint="Set SECRET_KEY (50+ random characters).", id="clawdirector.E001")
        )
    if not settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS is empty: every request would be refused with 400.",
                hint="Set ALLOWED_HOSTS to the host names this app answers to (comma-separated).",
                id="clawdirector.E004",
            )
        )
    if not settings.SPRITES_API_TOKEN:
        errors.append(
            Error(
                "SPRITES_API_TOKEN is not set.",
                hint="Create a token at sprites.dev (Access Tokens); the emulator is only used with DEBUG on.",
                id="clawdirector.E002",
            )
        )
    if not settings.CRON_SECRET:
        errors.append(
            Error(
                "CRON_SECRET is not set.",
                hint="Set it to a long random string; cron sends it as 'Authorization: Bearer …'.",
                id="clawdirector.E003",
            )
        )
    elif len(settings.CRON_SECRET) < 32:
        errors.append(
            Warning("CRON_SECRET is shorter than 32 characters.", id="clawdirector.W001")
        )
    return errors


@register()
def check_production_database(app_configs=None, **kwargs):
    """Production on SQLite loses what overlapping sweeps and several workers need (row locks,
    SKIP LOCKED, concurrent writers) and usually its data with the container: refused with DEBUG
    off unless ALLOW_SQLITE_IN_PRODUCTION says it is deliberate (a single-host trial). Runs with
    every management command, `check --deploy`, and at WSGI start-up (clawdirector/wsgi.py)."""
    if settings.DEBUG or settings.ALLOW_SQLITE_IN_PRODUCTION:
        return []
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine.endswith("sqlite3"):
        return [Error(
            "DATABASE_URL is SQLite with DEBUG off.",
            hint="Set DATABASE_URL=postgres://user:password@host:5432/db (or ALLOW_SQLITE_IN_PRODUCTION=1 for a "
                 "single-host trial).",
            id="clawdirector.E006",
        )]
    return []


@register()
def check_emulator_target(app_configs=None, **kwargs):
    """Emulator mode (DEBUG on, no SPRITES_API_TOKEN) sends a placeholder token: to the local
    emulator, never to a real API someone's .env still names."""
    from urllib.parse import urlsplit

    if not settings.SPRITES_USE_EMULATOR:
        return []
    host = urlsplit(settings.SPRITES_API_URL).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") or host.endswith(".localhost"):
        return []
    return [Warning(
        f"No SPRITES_API_TOKEN (emulator mode), but SPRITES_API_URL points at {host}: it would get the "
        "emulator's placeholder token.",
        hint="Unset SPRITES_API_URL to use the local emulator, or set SPRITES_API_TOKEN for the real API.",
        id="clawdirector.W004",
    )]


def startup_errors() -> list[str]:
    """The serious system-check messages, for a server that runs no management command at
    start (gunicorn): clawdirector/wsgi.py refuses to serve while there are any."""
    from django.core import checks

    return [str(message) for message in checks.run_checks() if message.is_serious() and not message.is_silenced()]


@register()
def check_openclaw_pins(app_configs=None, **kwargs):
    """The pinned Node must satisfy the pinned OpenClaw's declared engines (shipped in
    sprites/openclaw/engines.json: no network at check time). On a Node below the range
    `openclaw --version` still works and `openclaw gateway` exits 1, so set-up would pass and
    no gateway would ever start."""
    from sprites.openclaw import engines as pins

    engines = pins.node_engines()
    if engines is None:
        return [Warning(
            f"OPENCLAW_VERSION {settings.OPENCLAW_VERSION} has no engines range in sprites/openclaw/engines.json.",
            hint="Add it from `npm view openclaw@<version> engines`, then run make test-openclaw.",
            id="clawdirector.W002",
        )]
    try:
        fits = pins.satisfies(settings.OPENCLAW_NODE_VERSION, engines)
    except ValueError as exc:  # a Node pin that is not x.y.z, or a range we cannot read
        fits, engines = False, f"{engines}; {exc}"
    if not fits:
        return [Error(
            f"OPENCLAW_NODE_VERSION {settings.OPENCLAW_NODE_VERSION} does not satisfy OpenClaw "
            f"{settings.OPENCLAW_VERSION}'s engines.node ({engines}).",
            hint="Pin a Node inside that range (the gateway exits 1 on one outside it).",
            id="clawdirector.E005",
        )]
    return []


@register()
def check_heartbeat_bounds(app_configs=None, **kwargs):
    """The heartbeat turn waits for /startupz, then runs the agent for up to 120 s, all inside
    `timeout HEARTBEAT_TIMEOUT_SECONDS`: a timeout shorter than both kills every turn that
    met a cold gateway."""
    from sprites import openclaw

    needed = settings.OPENCLAW_STARTUP_WAIT_SECONDS + openclaw.AGENT_TURN_TIMEOUT_SECONDS
    if not settings.HEARTBEAT_COMMAND and settings.HEARTBEAT_TIMEOUT_SECONDS < needed:
        return [Warning(
            f"HEARTBEAT_TIMEOUT_SECONDS ({settings.HEARTBEAT_TIMEOUT_SECONDS}) is shorter than the start-up wait "
            f"plus the agent's own timeout ({needed} s).",
            hint="Raise HEARTBEAT_TIMEOUT_SECONDS or lower OPENCLAW_STARTUP_WAIT_SECONDS.",
            id="clawdirector.W003",
        )]
    return []


@register()
def check_model_access(app_configs=None, **kwargs):
    """MODEL_ACCESS must name a backend, and LiteLLM needs its URL and master key (else every
    activation of a user's sprite would fail at the key API)."""
    if settings.MODEL_ACCESS not in ("", "litellm", "byo"):
        return [Error(f"MODEL_ACCESS {settings.MODEL_ACCESS!r} is not one of '', 'litellm', 'byo'.",
                      id="clawdirector.E007")]
    if settings.MODEL_ACCESS == "litellm" and not (settings.MODEL_PROXY_URL and settings.MODEL_PROXY_MASTER_KEY):
        return [Error("MODEL_ACCESS=litellm needs MODEL_PROXY_URL and MODEL_PROXY_MASTER_KEY.",
                      hint="Set both (the master key stays in ClawDirector's settings).", id="clawdirector.E007")]
    return []


@register()
def check_budgets_and_notifications(app_configs=None, **kwargs):
    """A webhook nobody can verify is a door for forged alerts; a warning threshold outside
    1-99 % would warn never or at once."""
    errors = []
    if settings.NOTIFY_WEBHOOK_URL and not settings.NOTIFY_WEBHOOK_SECRET:
        errors.append(Error("NOTIFY_WEBHOOK_URL is set without NOTIFY_WEBHOOK_SECRET.",
                            hint="Set NOTIFY_WEBHOOK_SECRET to a long random string; the receiver verifies "
                                 "X-ClawDirector-Signature with it.", id="clawdirector.E008"))
    if not 1 <= settings.BUDGET_WARN_PERCENT <= 99:
        errors.append(Error(f"BUDGET_WARN_PERCENT is {settings.BUDGET_WARN_PERCENT}; it must be from 1 to 99.",
                            id="clawdirector.E009"))
    return errors
