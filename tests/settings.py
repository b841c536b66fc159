"""Test settings: production settings (DEBUG off) with a test secret and no HTTPS redirect."""

import os

os.environ.setdefault("DEVTOOLS", "1")  # the benchmarks are tested too
os.environ.setdefault("DEBUG", "0")  # wins over a developer's .env (read without overwriting)
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

from clawdirector.settings import *  # noqa: E402,F401,F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
# No collectstatic before a test run: plain file names from the apps (the production recipe
# test, tests/deploy/, runs collectstatic and the hashed, compressed storage for real).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_AUTOREFRESH = True  # serve from the apps' static dirs, no STATIC_ROOT needed
WHITENOISE_USE_FINDERS = True
# Threads (the live server, task workers, sweep workers) must not keep their
# connections past a request, or the test database cannot be dropped at the end.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Tasks run where they are queued, in the caller's transaction; tests/sprites/test_tasks.py
# uses the database backend and real `manage.py worker` processes.
# (A worker process a test starts gets TASKS_BACKEND=django_tasks_db.DatabaseBackend.)
TASKS = {"default": {"BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks.backends.immediate.ImmediateBackend"),
                     "QUEUES": ["default", "setup"]}}
# A fleet that heals (issue 14): off unless a test turns it on, so the sweep's other tests
# see exactly the Sprites calls they mock (tests/sprites/services/test_reconcile.py and
# tests/heartbeat/test_healing.py turn them on).
RECONCILE_EVERY_MINUTES = 0
GATEWAY_VERIFY = False
