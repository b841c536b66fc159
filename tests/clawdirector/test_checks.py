"""Production configuration: missing secrets are named system-check errors."""

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
