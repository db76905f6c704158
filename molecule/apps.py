"""App config for the platform core."""

from django.apps import AppConfig


class MoleculeConfig(AppConfig):
    name = "molecule"
    verbose_name = "Molecule platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        # Declare the stored metrics, so /metrics shows each series from the first scrape.
        from molecule import metrics  # noqa: F401
        from molecule.connections import close_hung_up

        request_started.connect(close_hung_up, dispatch_uid="molecule.close_hung_up")
