"""Concurrency of the pool on a real PostgreSQL server: many requests at once, in threads, each
with its own database connection, against the emulator."""

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections

from sprites import services
from sprites.models import UserSprite

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="row locking and concurrent claims need PostgreSQL (set DATABASE_URL)"),
]


def run_at_once(count: int, work) -> list:
    """Run work(i) in `count` threads released together; return the results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def target(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # reported by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_it_gives_one_user_exactly_one_sprite_from_ten_concurrent_requests(emulator, alice):
    services.fill_pool(target=3)

    results = run_at_once(10, lambda i: services.provision_sprite(user=alice))

    assert not [r for r in results if isinstance(r, Exception)], results
    outcomes = Counter(outcome for _, outcome in results)
    assert outcomes["ready"] == 1 and outcomes["provisioning"] == 0 and outcomes["existing"] == 9
    assert len({sprite.pk for sprite, _ in results}) == 1
    assert UserSprite.objects.filter(user=alice).count() == 1
    assert UserSprite.objects.filter(user__isnull=True, status="ready").count() == 2  # one claim only
    assert UserSprite.objects.get(user=alice).events.filter(action="provision").count() == 1


def test_it_never_gives_two_users_the_same_pool_sprite(emulator):
    services.fill_pool(target=3)
    pool = set(UserSprite.objects.filter(user__isnull=True).values_list("pk", flat=True))
    users = [get_user_model().objects.create_user(f"user{i}") for i in range(8)]

    results = run_at_once(8, lambda i: services.provision_sprite(user=users[i]))

    assert not [r for r in results if isinstance(r, Exception)], results
    outcomes = Counter(outcome for _, outcome in results)
    assert outcomes == {"ready": 3, "provisioning": 5}
    claimed = [sprite.pk for sprite, outcome in results if outcome == "ready"]
    assert sorted(claimed) == sorted(pool)
    owners = list(UserSprite.objects.filter(pk__in=pool).values_list("user", flat=True))
    assert None not in owners and len(set(owners)) == 3
    assert UserSprite.objects.filter(user__isnull=False).values("user").distinct().count() == 8
    assert not UserSprite.objects.filter(user__isnull=True).exists()


def test_it_never_overfills_when_two_fills_run_at_once(emulator):
    results = run_at_once(2, lambda i: services.fill_pool(target=3))
    assert sorted(results) == [0, 3]  # the second saw the first's reservations
    assert UserSprite.objects.filter(user__isnull=True).count() == 3
    assert UserSprite.objects.filter(user__isnull=True, status="ready").count() == 3
