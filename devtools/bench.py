"""Shared by the `bench_*` commands: they create and delete rows, so they run only on a
scratch database."""

from pathlib import Path

from django.core.management.base import CommandError
from django.db import connection


def require_scratch_database(*, yes_wipe: bool) -> str:
    """The database name, or CommandError unless it starts with bench/test or --yes-wipe."""
    name = Path(str(connection.settings_dict["NAME"])).name
    if not (yes_wipe or name.startswith(("bench", "test"))):
        raise CommandError(
            f"Refusing to benchmark on database {name!r}: use a scratch database whose name starts "
            "with 'bench' or 'test' (make bench does), or pass --yes-wipe."
        )
    return name
