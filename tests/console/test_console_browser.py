"""The operator console in a real browser: headless Chromium (Debian's) driven by Playwright
against a live server, with the stop action calling the Sprites emulator over HTTP."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone

from sprites.billing import record_usage
from sprites.models import UserSprite
from tests.conftest import usage

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # in between are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            yield page
        finally:
            browser.close()
            # While Playwright's loop runs, the ORM keeps its connections in that context, not
            # the one pytest-django closes: close them here or the test database can't be dropped.
            connections.close_all()


def provision_on_emulator(user):
    """A sprite the emulator knows, with its gateway running, through the real services."""
    from sprites import services

    sprite, _ = services.provision_sprite(user=user)
    sprite.refresh_from_db()
    assert sprite.status == "online"
    return sprite


def test_it_shows_badges_and_totals_stops_a_sprite_and_refreshes_live(
    transactional_db, live_server, emulator, browser_page, settings
):
    from playwright.sync_api import expect

    settings.SPRITE_POOL_SIZE = 2
    User = get_user_model()
    User.objects.create_superuser("ops", "ops@example.com", "ops-password-1")
    alice = User.objects.create_user("alice", "alice@example.com", "alice-password-1")
    bob = User.objects.create_user("bob", "bob@example.com", "bob-password-1")
    carol = User.objects.create_user("carol", "carol@example.com", "carol-password-1")
    running = provision_on_emulator(alice)
    now = timezone.now()
    asleep = UserSprite.objects.create(
        user=bob, sprite_name="claw-bob", status="sleeping", vm_state="cold", last_heartbeat=now - timedelta(minutes=7)
    )
    broken = UserSprite.objects.create(
        user=carol, sprite_name="claw-carol", status="error", last_error="Sprites API unavailable (503)"
    )
    UserSprite.objects.create(sprite_name="claw-pool-1", status="ready")
    for i, (sprite, cost) in enumerate([(asleep, "4.20"), (broken, "1.30"), (asleep, "2.50")]):
        at = now - timedelta(days=i, hours=1)
        record_usage([usage(sprite, started_at=at, cost=cost, seconds="120", key=f"b:{i}")])
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/?next=/admin/sprites/usersprite/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/sprites/usersprite/")
    page.click("#toggle-nav-sidebar")  # the admin's app list: more room for the figures

    def badge(sprite):
        return page.locator(f'[data-live-id="{sprite.pk}"][data-live-field="status"] .sprite-badge')

    expect(badge(running)).to_have_text("Online")
    expect(badge(asleep)).to_have_text("Sleeping")
    expect(badge(broken)).to_have_text("Error")
    expect(page.locator('[data-fleet="cost-month"]')).to_contain_text("$")
    expect(page.locator('[data-fleet="pool"]')).to_have_text("1 / 2")
    expect(page.locator('[data-fleet-count="error"]')).to_have_text("1")
    expect(page.locator(".fleet-chart-svg rect.bar")).to_have_count(30)
    # No tick has read the provider's running cap yet: the card says what cap the fleet needs.
    expect(page.locator(".fleet-card", has_text="Heartbeat capacity")).to_contain_text("needs a cap of")
    expect(page.locator("#sprite-live-status")).to_have_attribute("data-state", "live", timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-changelist.png"), full_page=True)

    # The stop action, through the real service and the emulator.
    page.check(f'#result_list input.action-select[value="{running.pk}"]')
    expect(page.locator("#sprite-live-status")).to_have_attribute("data-state", "paused", timeout=15_000)
    page.select_option("select[name=action]", "stop")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist")).to_contain_text("Stopped 1 sprite")
    running.refresh_from_db()
    assert running.status == "stopped"
    expect(badge(running)).to_have_text("Stopped")

    # A change made elsewhere shows up without a reload.
    UserSprite.objects.filter(pk=asleep.pk).update(status="online", vm_state="running")
    page.evaluate("window.__sameDocument = true")
    expect(badge(asleep)).to_have_text("Online", timeout=15_000)
    expect(page.locator('[data-fleet-count="online"]')).to_have_text("1", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened


def test_staff_set_a_budget_in_the_browser_and_a_sprite_over_it_is_paused_then_restored(
    transactional_db, live_server, emulator, browser_page, settings
):
    """Issue 13's budget as staff use it: the sprite page's "Set", a budget under what the user
    spent pauses the sprite (its gateway stopped on the emulator), a raise brings it back."""
    from playwright.sync_api import expect

    settings.SPRITE_MONTHLY_BUDGET_USD = None
    User = get_user_model()
    User.objects.create_superuser("ops", "ops@example.com", "ops-password-1")
    alice = User.objects.create_user("alice", "alice@example.com", "alice-password-1")
    sprite = provision_on_emulator(alice)
    record_usage([usage(sprite, started_at=timezone.now() - timedelta(minutes=5), cost="3.00", seconds="60",
                        key="browser:spend")])
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/sprites/usersprite/{sprite.pk}/change/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"**/admin/sprites/usersprite/{sprite.pk}/change/")

    def set_budget(amount):
        page.get_by_role("link", name="Set").click()
        page.fill("#id_monthly_budget_usd", amount)
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(f"**/admin/sprites/usersprite/{sprite.pk}/change/")

    set_budget("2.50")  # $3.00 already spent this month
    expect(page.locator("ul.messagelist")).to_contain_text("Monthly budget of alice: $2.50")
    sprite.refresh_from_db()
    assert sprite.status == "over_budget"
    assert emulator.service(sprite.sprite_name, "openclaw-gateway").status == "stopped"
    page.screenshot(path=str(ARTIFACTS / "admin-budget-over.png"), full_page=True)

    set_budget("10")
    sprite.refresh_from_db()
    assert sprite.status == "online"
    assert emulator.service(sprite.sprite_name, "openclaw-gateway").status == "running"
    assert sprite.events.filter(action="set_budget", actor_kind="staff").count() == 2
