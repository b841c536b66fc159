"""The layout is the design: one room per role, arrows one way (docs/architecture.md)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(room: str) -> dict[str, set[str]]:
    """Every module each file of `room` imports (absolute names; relative ones resolved)."""
    found = {}
    for path in (ROOT / room).rglob("*.py"):
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    names.add(f"{base}.{node.module}" if node.module else base)
                else:
                    names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(room: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path}: {name}"
        for path, names in imports_of(room).items()
        for name in names
        if name.split(".")[0] in forbidden
    )


def test_the_domain_imports_neither_the_heartbeat_nor_the_console():
    assert offenders("sprites", ("heartbeat", "console", "ops", "devtools")) == []


def test_the_heartbeat_does_not_import_the_console():
    assert offenders("heartbeat", ("console", "ops", "devtools")) == []


def test_the_console_does_not_import_the_dev_tools():
    assert offenders("console", ("ops", "devtools")) == []


def test_the_operations_room_sits_beside_the_console():
    """ops (health, readiness, metrics, log plumbing) reads heartbeat and sprites, like the console."""
    assert offenders("ops", ("console", "devtools")) == []


def test_the_emulator_imports_nothing_of_ours_and_no_django():
    ours = ("clawdirector", "sprites", "heartbeat", "console", "devtools", "django", "rest_framework")
    assert offenders("sprites_emulator", ours) == []


def test_only_the_client_and_the_services_name_the_client():
    users = set()
    for room in ("clawdirector", "sprites", "heartbeat", "console", "ops", "devtools"):
        for path in (ROOT / room).rglob("*.py"):
            text = path.read_text()
            if "get_client" in text or "SpritesClient" in text:
                users.add(path.relative_to(ROOT).parts[:2])
    assert users <= {("sprites", "client"), ("sprites", "services")}


# The domain's HTTP speakers, each named: the Sprites client, the model proxy's key API
# (issue 15: LiteLLM virtual keys are minted, read and deleted over HTTP with the proxy's
# master key, which must stay in one small module that nothing in a sprite ever sees), and the
# notification webhook (issue 13: one signed POST to the operator's URL, from a task).
HTTP_SPEAKERS = ("sprites/client/", "sprites/modelaccess/litellm.py", "sprites/notify/webhook.py")


def test_only_the_client_the_model_proxys_key_api_and_the_webhook_speak_http():
    speakers = {
        path for path, names in imports_of("sprites").items()
        if any(name.split(".")[0] in ("requests", "urllib3", "httpx", "websockets") for name in names)
    }
    assert speakers and all(path.startswith(HTTP_SPEAKERS) for path in speakers)
    assert "sprites/modelaccess/litellm.py" in speakers
    assert "sprites/notify/webhook.py" in speakers
