"""`python manage.py heartbeat`: output, exit codes, the per-host lock, argument errors."""

import fcntl
from io import StringIO

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command

from heartbeat.management.commands.heartbeat import lock_path
from heartbeat.models import HeartbeatRun
from sprites.models import UserSprite
from tests.conftest import make_sprite

from .conftest import answer_exec, exec_body

pytestmark = pytest.mark.django_db


def heartbeat(*args):
    out = StringIO()
    call_command("heartbeat", *args, stdout=out)
    return out.getvalue()


def test_it_prints_a_summary_line(mocked):
    make_sprite("one")
    make_sprite("stopped", status=UserSprite.Status.STOPPED)
    answer_exec(mocked)

    out = heartbeat()

    assert "woke 1, skipped 1, failed 0, billed $0.0015 in " in out
    assert "one:" not in out  # per-sprite lines only at -v 2


def test_it_prints_one_line_per_sprite_at_verbosity_2(mocked):
    make_sprite("alpha")
    make_sprite("beta")
    answer_exec(mocked)

    out = heartbeat("-v", "2")

    assert "alpha: ok in " in out and "beta: ok in " in out


def test_it_exits_1_after_the_summary_when_a_sprite_failed(mocked):
    make_sprite("good")
    make_sprite("bad")
    answer_exec(mocked, {"bad": exec_body(b"boom\n", 1)})
    out = StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("heartbeat", stdout=out)

    assert exit_info.value.code == 1
    assert "woke 1, skipped 0, failed 1" in out.getvalue()
    assert "bad: failed: exit 1 (failed): boom" in out.getvalue()


def test_it_exits_cleanly_when_another_sweep_runs_on_this_host(mocked):
    make_sprite("one")
    calls = answer_exec(mocked)
    with open(lock_path(), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out = heartbeat()
    assert "already running on this host" in out
    assert calls == [] and not HeartbeatRun.objects.exists()
    heartbeat()  # released: the next one runs
    assert calls == ["one"]


def test_it_wakes_one_sprite_by_name_or_public_id(mocked):
    one = make_sprite("one")
    make_sprite("two")
    calls = answer_exec(mocked)

    heartbeat("--sprite", "one")
    heartbeat("--sprite", str(one.public_id), "--force")

    assert calls == ["one", "one"]


def test_it_rejects_an_unknown_sprite_and_bad_arguments():
    with pytest.raises(CommandError, match="No sprite 'nope'"):
        heartbeat("--sprite", "nope")
    with pytest.raises(CommandError, match="--concurrency"):
        heartbeat("--concurrency", "0")
    with pytest.raises(CommandError, match="--force needs --sprite"):
        heartbeat("--force")


def test_it_turns_bad_configuration_into_a_command_error(settings):
    settings.HEARTBEAT_COMMAND = "openclaw agent {nope}"
    with pytest.raises(CommandError, match="HEARTBEAT_COMMAND"):
        heartbeat()


def test_it_dry_runs_without_waking_anyone(mocked):
    make_sprite("one")
    calls = answer_exec(mocked)

    out = heartbeat("--dry-run", "-v", "2")

    assert "one: would wake" in out and "would wake 1" in out
    assert calls == []


def test_it_records_connection_failures_per_sprite(mocked):
    make_sprite("one")
    answer_exec(mocked, {"one": requests.ConnectionError("down")})
    with pytest.raises(SystemExit):
        heartbeat()
    assert HeartbeatRun.objects.get().failed == 1


def test_it_is_scheduled_by_django_crontab(capsys):
    schedule, job, args, _, suffix = settings.CRONJOBS[0]
    # The wrapper that keeps the command's exit status (tests/heartbeat/test_cron_wrapper.py),
    # its output to syslog, never to a file in /tmp.
    assert (schedule, job, args) == (settings.HEARTBEAT_SCHEDULE, "heartbeat.cron.run", [])
    assert "logger -t clawdirector-heartbeat" in suffix and "/tmp" not in suffix
    call_command("crontab", "show")  # reads only; works without a crontab binary
    assert "Currently active jobs in crontab" in capsys.readouterr().out
