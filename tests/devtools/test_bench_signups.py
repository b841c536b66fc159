"""bench_signups: a burst of sign-ups with an empty pool, set up by real worker loops."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from sprites.models import UserSprite


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the database queue's leases need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_it_sets_a_burst_of_sign_ups_up_and_prints_the_bound():
    out = StringIO()
    call_command("bench_signups", "--users", "4", "--setup-seconds", "0.2", "--parallel", "2", "--pool", "1",
                 "--yes-wipe", stdout=out)

    text = out.getvalue()
    assert "all answered 202" in text and "failed set-ups 0" in text
    assert "(5 set-ups)" in text and "bound 4 × 0.2 s ÷ 2" in text and "efficiency" in text
    assert not UserSprite.objects.exists() and not get_user_model().objects.exists()
