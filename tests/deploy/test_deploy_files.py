"""deploy/: the compose file validates (Docker Compose itself, and the Compose Specification's
JSON schema), and the Dockerfile and systemd units say what docs/operations.md says they do."""

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose_command() -> list[str] | None:
    """Compose v2 (`docker compose`) when the plugin is there, else v1 (Debian's docker-compose)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="needs docker compose or docker-compose (.ci/run installs it)")
def test_docker_compose_config_validates(tmp_path):
    """`docker compose config` needs the .env the file names (an operator's first step): run it
    on a copy beside an empty one, so a developer's own .env is never read."""
    (tmp_path / "deploy").mkdir()
    for name in ("compose.yaml", "Dockerfile"):
        shutil.copy(DEPLOY / name, tmp_path / "deploy" / name)
    (tmp_path / ".env").write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "POSTGRES_PASSWORD": "validation-only"}
    result = subprocess.run([*compose_command(), "-f", "deploy/compose.yaml", "config"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"db", "migrate", "web", "worker", "heartbeat", "sampler"}
    # Without the database password it refuses to start rather than run with an empty one.
    refused = subprocess.run([*compose_command(), "-f", "deploy/compose.yaml", "config"], cwd=tmp_path,
                             env={"PATH": env["PATH"]}, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stdout + refused.stderr


def test_compose_file_follows_the_compose_specification():
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(document)
    web = document["services"]["web"]
    assert web["command"] == ["gunicorn"] and "/healthz" in " ".join(web["healthcheck"]["test"])
    assert document["services"]["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert document["services"]["worker"]["command"] == ["python", "manage.py", "worker"]


def test_the_image_runs_as_a_user_and_collects_static_at_build():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "collectstatic --noinput" in dockerfile
    assert "\nUSER clawdirector\n" in dockerfile
    assert dockerfile.index("collectstatic") < dockerfile.index("USER clawdirector")
    assert 'CMD ["gunicorn"]' in dockerfile


def units() -> dict[str, configparser.ConfigParser]:
    found = {}
    for path in sorted((DEPLOY / "systemd").iterdir()):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(path)
        found[path.name] = parser
    return found


def test_the_systemd_units_run_the_documented_commands():
    found = units()
    assert set(found) == {"clawdirector-web.service", "clawdirector-worker.service", "clawdirector-sampler.service",
                          "clawdirector-heartbeat.service", "clawdirector-heartbeat.timer"}
    assert found["clawdirector-sampler.service"]["Service"]["ExecStart"].endswith("manage.py sample_usage --loop")
    assert found["clawdirector-worker.service"]["Service"]["ExecStart"].endswith("manage.py worker")
    assert found["clawdirector-web.service"]["Service"]["ExecStart"].endswith("/.venv/bin/gunicorn")
    heartbeat = found["clawdirector-heartbeat.service"]["Service"]
    assert heartbeat["Type"] == "oneshot" and heartbeat["ExecStart"].endswith("manage.py heartbeat --budget 50")
    assert found["clawdirector-heartbeat.timer"]["Timer"]["OnCalendar"] == "*:*:00"
