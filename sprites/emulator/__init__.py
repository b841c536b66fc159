"""A local emulator of the Fly.io Sprites REST API (see docs/emulator.md).

Stdlib only, no Django: `state` is the in-memory model (sprites, their lazily computed
running/warm/cold status and the exact running-time meter, simulated exec), `server` is the
HTTP layer, `testing` starts one in a background thread for tests.
"""

from .state import SPRITE_VERSION, EmulatorState, Faults, Options

__all__ = ["SPRITE_VERSION", "EmulatorState", "Faults", "Options"]
