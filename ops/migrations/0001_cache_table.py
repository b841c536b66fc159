"""The database cache table (settings.CACHES): throttle counters shared by every worker and host.

A migration rather than a separate `createcachetable` step, so the documented deploy
(`migrate`, then start) is all an operator runs, and `/readyz` sees it as one more migration.
"""

from django.core.management import call_command
from django.db import migrations


def create(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


def drop(apps, schema_editor):
    from django.conf import settings

    for cache in settings.CACHES.values():
        if cache["BACKEND"].endswith("DatabaseCache"):
            schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(cache['LOCATION'])}")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.RunPython(create, drop, elidable=False)]
