"""Shared by the `bench_*` commands: they create and delete rows, so they run only on a
scratch database."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection, transaction

from sprites.models import UserSprite


def require_scratch_database(*, yes_wipe: bool) -> str:
    """The database name, or CommandError unless it starts with bench/test or --yes-wipe."""
    name = Path(str(connection.settings_dict["NAME"])).name
    if not (yes_wipe or name.startswith(("bench", "test"))):
        raise CommandError(
            f"Refusing to benchmark on database {name!r}: use a scratch database whose name starts "
            "with 'bench' or 'test' (make bench does), or pass --yes-wipe."
        )
    return name


def delete_bench_rows(before: set[int], tag: str) -> None:
    """Delete exactly what a benchmark created: the sprites not in `before`, every row that
    points at them (ledger, roll-ups, events, credentials, wakes…: whatever relations the models
    have), then its `bench-{tag}-` users. Raw deletes: the ledger refuses ordinary ones, and these
    rows exist only because the benchmark made them (scratch database only)."""
    with transaction.atomic():
        delete_sprites(UserSprite.objects.exclude(pk__in=before))
        get_user_model().objects.filter(username__startswith=f"bench-{tag}-").delete()


def delete_sprites(sprites) -> None:
    """Raw-delete these sprite rows and every row of any model pointing at them, hidden
    relations (`related_name="+"`, e.g. notifications) included."""
    relations = [f for f in UserSprite._meta.get_fields(include_hidden=True) if f.auto_created and not f.concrete]
    for relation in relations:
        model = relation.related_model
        model.objects.filter(**{f"{relation.field.name}__in": sprites})._raw_delete(model.objects.db)
    sprites._raw_delete(UserSprite.objects.db)
