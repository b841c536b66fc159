"""Model access failures.

A model proxy that does not answer while a sprite is activated is handled exactly like a
Sprites outage (transient): provisioning compensates (the sprite goes back to the pool), a
rotation keeps the old token and key. So it is a `SpritesUnavailable`, and the services need no
new except clause."""

from sprites.client.errors import SpritesUnavailable


class ModelAccessUnavailable(SpritesUnavailable):
    """The model proxy's key API failed (connection, time-out, an error status)."""
