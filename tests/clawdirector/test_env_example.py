"""`.env.example` is safe to copy as it is: local development (DEBUG on, SQLite, the emulator, no
HTTPS redirect), never the real Sprites API with a placeholder token. And it names every
variable settings.py reads (docs/configuration.md documents them)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"


def active() -> dict[str, str]:
    """The variables the example sets (uncommented lines), as django-environ reads them."""
    values: dict[str, str] = {}
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2).strip('"')
    return values


def test_it_sets_only_what_local_development_needs():
    assert active() == {"DEBUG": "1", "SECURE_SSL_REDIRECT": "0"}


def test_copied_as_it_is_it_runs_locally_against_the_emulator(tmp_path):
    """The settings a fresh `cp .env.example .env` gives, read by a separate process."""
    env = {key: value for key, value in os.environ.items()
           if not re.match(r"^(DJANGO_|DEBUG$|DATABASE_URL$|SPRITES_|SECURE_|SECRET_KEY$|ALLOWED_HOSTS$)", key)}
    env.update(active())
    script = (
        "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'clawdirector.settings'; django.setup();"
        "from django.conf import settings as s; from django.core import checks;"
        "print(json.dumps({'debug': s.DEBUG, 'engine': s.DATABASES['default']['ENGINE'], 'url': s.SPRITES_API_URL,"
        "'emulator': s.SPRITES_USE_EMULATOR, 'redirect': s.SECURE_SSL_REDIRECT,"
        "'issues': [m.id for m in checks.run_checks()]}))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["debug"] is True and seen["emulator"] is True and seen["redirect"] is False
    assert seen["engine"].endswith("sqlite3")
    assert seen["url"].startswith("http://127.0.0.1:")  # the emulator, never api.sprites.dev
    assert seen["issues"] == []


def test_it_names_every_variable_settings_reads():
    source = (ROOT / "clawdirector" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+|_decimal)\(\s*"([A-Z_][A-Z0-9_]*)"', source))
    named = set(re.findall(r"^#? ?([A-Z_][A-Z0-9_]*)=", EXAMPLE.read_text(), flags=re.M))
    missing = sorted(read - named)
    assert read and not missing, (
        f"settings.py reads {missing}: name each in .env.example (commented, with its default) and "
        "document it in docs/configuration.md (house style: every variable in both)")
