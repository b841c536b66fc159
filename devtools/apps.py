from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Benchmarks, the demo bootstrap and the emulator wrapper: development only.

    Installed when DEBUG is on or DEVTOOLS=1 (clawdirector/settings.py), so a production
    `manage.py help` never lists a command that can wipe the ledger.
    """

    name = "devtools"
    verbose_name = "Developer tools"
