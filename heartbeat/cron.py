"""The job django-crontab runs (settings.CRONJOBS): the `heartbeat` command, with its exit status.

django-crontab's `crontab run` calls its job inside a bare `except:` and exits 0 whatever
happened, SystemExit included: a sweep that failed, or could not start for a broken setting,
looked like a success to anything watching the exit status, and its traceback went wherever the
crontab line pointed. This wrapper runs the command, reports a crash through logging, flushes
everything, then ends the process itself with the command's own status (`os._exit`), before
django-crontab can swallow it. The output goes to syslog (the crontab line pipes it to
`logger`, so journald on a systemd host) and the command pings HEARTBEAT_PING_URL itself.
"""

import logging
import os
import sys

from django.core.management import call_command
from django.core.management.base import CommandError

from heartbeat.config import TICK_BUDGET

logger = logging.getLogger(__name__)


def run() -> None:
    status = 0
    try:
        call_command("heartbeat", budget=TICK_BUDGET)  # a tick, as cron runs it every minute
    except SystemExit as exc:  # the command's "exit 1: a sprite failed"
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CommandError as exc:  # bad configuration: what `manage.py heartbeat` prints and exits 1 for
        sys.stderr.write(f"CommandError: {exc}\n")
        status = exc.returncode
    except BaseException:  # noqa: BLE001 - anything else: a crash, with its traceback in the log
        logger.exception("Heartbeat sweep crashed")
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
    os._exit(status)
