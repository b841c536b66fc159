"""gunicorn's configuration: `gunicorn` from the repository root reads this file by itself
(gunicorn looks for ./gunicorn.conf.py), so the documented command needs no flags:

    gunicorn                      # = gunicorn -c gunicorn.conf.py clawdirector.wsgi

Every value can be overridden by an environment variable (below) or a command-line flag.

Why these values:
- `gthread` workers, a few threads each: the cron endpoint (`/api/cron/heartbeat`) runs a
  whole sweep inside its request, and the sync worker would be killed at `timeout` for it. In a
  gthread worker, `timeout` is how long the worker's own loop may go silent (a hung process),
  not a limit on a request: a sweep runs to its end (bounded by the sweep itself:
  HEARTBEAT_TIMEOUT_SECONDS per turn, see docs/operations.md) while the other threads serve.
- `graceful_timeout`: on a deploy or `HUP`, requests in flight get one heartbeat turn's time
  (HEARTBEAT_TIMEOUT_SECONDS) plus margin to finish; a sweep cut short is safe (its leases
  expire, the next sweep bills what is left once).
- Logs: the access log on stdout, errors on stderr, both through ops.logs (`LOG_FORMAT=json`
  for one JSON object a line, with the request id; secrets redacted; probes not logged).
"""

import os
import sys
from pathlib import Path

import environ

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # gunicorn's own entry point does not put the project on the path
environ.Env.read_env(ROOT / ".env", overwrite=False)  # as settings.py does: one source of truth

from ops.logs import ACCESS_LOG_FORMAT, logging_config  # noqa: E402

env = environ.Env()

wsgi_app = "clawdirector.wsgi:application"
bind = env.list("GUNICORN_BIND", default=["127.0.0.1:8000"])
workers = env.int("GUNICORN_WORKERS", default=2)
worker_class = "gthread"
threads = env.int("GUNICORN_THREADS", default=4)
timeout = env.int("GUNICORN_TIMEOUT", default=60)
graceful_timeout = env.int("GUNICORN_GRACEFUL_TIMEOUT", default=env.int("HEARTBEAT_TIMEOUT_SECONDS", default=180) + 30)
keepalive = 5
# Behind a proxy that terminates TLS, forwarded headers are trusted only from it (Django's
# own SECURE_PROXY_SSL_HEADER and TRUSTED_PROXY_COUNT decide what the app believes).
forwarded_allow_ips = env.str("FORWARDED_ALLOW_IPS", default="127.0.0.1,::1")

accesslog = "-"
access_log_format = ACCESS_LOG_FORMAT
errorlog = "-"
loglevel = env.str("LOG_LEVEL", default="INFO").lower()
logconfig_dict = logging_config(level=env.str("LOG_LEVEL", default="INFO").upper(),
                                fmt=env.str("LOG_FORMAT", default="plain"), gunicorn=True)
proc_name = "clawdirector"
# Workers write their heartbeat files to memory, not to a disk that may stall (containers).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
