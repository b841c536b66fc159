"""Shared fixtures: the personas (alice owns a sprite, bob is another user, staff) and a real
Sprites emulator over HTTP."""

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture(autouse=True)
def _sprites_settings(settings):
    """Tests never reach a real Sprites API: fast retries, a fake token, no stray base URL."""
    settings.SPRITES_API_URL = "https://api.sprites.test"
    settings.SPRITES_API_TOKEN = "test-token"
    settings.SPRITES_BACKOFF_SECONDS = 0.001
    settings.SPRITES_MAX_RETRIES = 2
    settings.SPRITES_READ_TIMEOUT = 10
    settings.CRON_SECRET = "cron-secret-for-tests-0123456789abcdef"
    settings.SPRITE_POOL_SIZE = 0


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("staff", "staff@example.com", "staff-password-1")


@pytest.fixture
def emulator(settings):
    """A real emulator on a free loopback port, with short idle times; settings point at it."""
    from sprites.emulator.testing import start_emulator

    handle = start_emulator(idle_seconds=1, cold_seconds=2, exec_seconds=0.05, setup_seconds=0)
    settings.SPRITES_API_URL = handle.url
    try:
        yield handle
    finally:
        handle.stop()
