"""Production configuration: missing secrets are named system-check errors."""

import pytest
from django.core import checks

from clawdirector.checks import check_production_secrets


def ids(errors):
    return sorted(e.id for e in errors)


def test_it_accepts_debug_without_secrets(settings):
    settings.DEBUG = True
    settings.SPRITES_API_TOKEN = ""
    settings.CRON_SECRET = ""
    assert check_production_secrets() == []


def test_it_rejects_production_without_secrets(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["clawdirector.example.com"]
    settings.SECRET_KEY = settings.DEV_SECRET_KEY
    settings.SPRITES_API_TOKEN = ""
    settings.CRON_SECRET = ""
    assert ids(check_production_secrets()) == ["clawdirector.E001", "clawdirector.E002", "clawdirector.E003"]


def test_it_accepts_production_with_secrets(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["clawdirector.example.com"]
    settings.SECRET_KEY = "x" * 60
    settings.SPRITES_API_TOKEN = "org/1/2/token"
    settings.CRON_SECRET = "c" * 40
    assert check_production_secrets() == []


def test_it_rejects_production_without_allowed_hosts(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = []
    settings.SECRET_KEY = "x" * 60
    settings.SPRITES_API_TOKEN = "org/1/2/token"
    settings.CRON_SECRET = "c" * 40
    assert ids(check_production_secrets()) == ["clawdirector.E004"]


def test_it_warns_about_a_short_cron_secret(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["clawdirector.example.com"]
    settings.SECRET_KEY = "x" * 60
    settings.SPRITES_API_TOKEN = "org/1/2/token"
    settings.CRON_SECRET = "short"
    assert ids(check_production_secrets()) == ["clawdirector.W001"]


def test_it_is_registered_with_django(settings):
    settings.DEBUG = False
    settings.SPRITES_API_TOKEN = ""
    assert "clawdirector.E002" in ids(checks.run_checks())


def test_it_encrypts_gateway_tokens_at_rest(alice):
    from django.db import connection

    from sprites.models import UserSprite

    sprite = UserSprite.objects.create(user=alice, sprite_name="claw-enc", gateway_token="tok-very-secret")
    with connection.cursor() as cursor:
        cursor.execute("SELECT gateway_token FROM user_sprites WHERE id = %s", [sprite.pk])
        stored = cursor.fetchone()[0]
    assert "tok-very-secret" not in stored
    assert UserSprite.objects.get(pk=sprite.pk).gateway_token == "tok-very-secret"


# --- the database in production, the emulator's token, and start-up ----------------------------------
# The checks read settings.DATABASES only; no connection is made with the overridden values.
no_override_warning = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def production(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["clawdirector.example.com"]
    settings.SECRET_KEY = "x" * 60
    settings.SPRITES_API_TOKEN = "org/1/2/token"
    settings.CRON_SECRET = "c" * 40


def sqlite(settings):
    settings.DATABASES = {**settings.DATABASES,
                          "default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.sqlite3"}}


@no_override_warning
def test_it_refuses_sqlite_in_production(settings):
    from clawdirector.checks import check_production_database

    production(settings)
    sqlite(settings)
    settings.ALLOW_SQLITE_IN_PRODUCTION = False
    assert ids(check_production_database()) == ["clawdirector.E006"]
    assert "clawdirector.E006" in ids(checks.run_checks(include_deployment_checks=True))  # check --deploy too
    settings.ALLOW_SQLITE_IN_PRODUCTION = True  # said out loud: a single-host trial
    assert check_production_database() == []
    settings.ALLOW_SQLITE_IN_PRODUCTION = False
    settings.DEBUG = True
    assert check_production_database() == []


@no_override_warning
def test_it_accepts_postgresql_in_production(settings):
    from clawdirector.checks import check_production_database

    production(settings)
    settings.DATABASES = {**settings.DATABASES, "default": {**settings.DATABASES["default"],
                                                            "ENGINE": "django.db.backends.postgresql"}}
    assert check_production_database() == []


def test_it_warns_when_the_emulators_token_would_go_to_a_real_api(settings):
    from clawdirector.checks import check_emulator_target

    settings.SPRITES_USE_EMULATOR = True
    settings.SPRITES_API_URL = "https://api.sprites.dev"
    assert ids(check_emulator_target()) == ["clawdirector.W004"]
    settings.SPRITES_API_URL = "http://127.0.0.1:8765"
    assert check_emulator_target() == []
    settings.SPRITES_USE_EMULATOR = False
    settings.SPRITES_API_URL = "https://api.sprites.dev"
    assert check_emulator_target() == []


@no_override_warning
def test_the_wsgi_app_refuses_to_start_on_a_check_error(settings):
    """gunicorn runs no management command: clawdirector/wsgi.py runs the checks itself."""
    from clawdirector.checks import startup_errors

    production(settings)
    settings.DATABASES = {**settings.DATABASES, "default": {**settings.DATABASES["default"],
                                                            "ENGINE": "django.db.backends.postgresql"}}
    assert startup_errors() == []
    sqlite(settings)
    settings.ALLOW_SQLITE_IN_PRODUCTION = False
    assert any("clawdirector.E006" in message for message in startup_errors())
