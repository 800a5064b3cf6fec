from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from tenants import auth_receivers, schema  # noqa: F401  (group changes renew rights; the OpenAPI auth scheme)

        post_migrate.connect(_install_key_lookup, sender=self, dispatch_uid="tenants.key_lookup")


def _install_key_lookup(sender=None, using: str = "default", **kwargs) -> None:
    """After every migrate (and the test database's flush): the API key lookup function."""
    from django.db import connections

    from tenants.selectors import api_key_lookup_install

    api_key_lookup_install(connections[using])
