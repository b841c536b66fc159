"""The cached install of the real OpenClaw package: `scripts/openclaw_cache.sh` installs the
package and a Node that satisfies its `engines.node` outside the repo and writes
`<cache>/env` (NODE=..., OPENCLAW_MJS=..., ...) last; `locate()` reads that file. Also the tail
of the service definition's PATH, behind the cached Node's bin dir."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

DEFAULT_VERSION = "2026.9.6"


# The service definition's PATH, with the cached Node's bin dir standing in for /usr/local/bin.
SERVICE_PATH_TAIL = "/usr/bin:/bin"


@dataclass(frozen=True)
class Install:
    cache_dir: Path
    version: str
    engines_node: str
    node: Path
    node_bin_dir: Path
    openclaw_mjs: Path
    openclaw_bin: Path  # a wrapper script: exec $NODE $OPENCLAW_MJS "$@"


def cache_dir(version: str | None = None) -> Path:
    version = version or os.environ.get("OPENCLAW_VERSION") or DEFAULT_VERSION
    if os.environ.get("OPENCLAW_CACHE_DIR"):
        return Path(os.environ["OPENCLAW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clawdirector" / f"openclaw-{version}"


def locate(version: str | None = None) -> Install | None:
    """The install scripts/openclaw_cache.sh finished (it writes `env` last), or None."""
    directory = cache_dir(version)
    env_file = directory / "env"
    if not (directory / ".complete").exists() or not env_file.exists():
        return None
    values = {}
    for line in env_file.read_text().splitlines():
        key, sep, raw = line.partition("=")
        if sep:
            values[key] = shlex.split(raw)[0] if raw else ""
    try:
        install = Install(
            cache_dir=Path(values["OPENCLAW_CACHE_DIR"]),
            version=values["OPENCLAW_VERSION"],
            engines_node=values.get("OPENCLAW_ENGINES_NODE", ""),
            node=Path(values["NODE"]),
            node_bin_dir=Path(values["NODE_BIN_DIR"]),
            openclaw_mjs=Path(values["OPENCLAW_MJS"]),
            openclaw_bin=Path(values["OPENCLAW_BIN"]),
        )
    except KeyError:
        return None
    if not (install.node.exists() and install.openclaw_mjs.exists()):
        return None
    return install


def require_install(version: str | None = None) -> Install:
    install = locate(version)
    if install is None:
        raise RuntimeError(f"No OpenClaw install in {cache_dir(version)}: run scripts/openclaw_cache.sh")
    return install
