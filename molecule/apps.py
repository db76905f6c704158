"""App config for the platform core."""

from django.apps import AppConfig


class MoleculeConfig(AppConfig):
    name = "molecule"
    verbose_name = "Molecule platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Declare the stored metrics, so /metrics shows each series from the first scrape.
        from molecule import metrics  # noqa: F401
