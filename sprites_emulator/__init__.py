"""A local emulator of the Fly.io Sprites REST API (see docs/emulator.md).

Stdlib only, and nothing from the product that uses it: the provider's double stays outside
the product. `python -m sprites_emulator --port 8765` runs it.

    state.py           EmulatorState: the lock, clocks, faults, counters, the activity state
                       machine and the running-time meter; composes the resource mixins:
    sprites.py         create/get/list/update/delete/upgrade, the sprite URL
    exec.py            exec sessions: run, list, kill
    services.py        services and their NDJSON start streams
    checkpoints.py     checkpoints: create, list, get, restore
    fs.py              the filesystem endpoints
    policy.py          the network policy
    control.py         per-sprite test knobs: behaviour overrides, pairing requests
    openclaw_guest.py  the simulated OpenClaw CLI (and a tiny shell) inside a sprite
    models.py, options.py, errors.py, formats.py   data, settings, exceptions, conversions
    server.py, routes.py, wire.py                  the HTTP server, its routes, its plumbing
    testing.py         start_emulator(): one in a background thread, with a typed test handle
"""

from .options import Faults, Options
from .state import SPRITE_VERSION, EmulatorState

__all__ = ["SPRITE_VERSION", "EmulatorState", "Faults", "Options"]
