from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants import auth_receivers, schema  # noqa: F401  (group changes renew rights; the OpenAPI auth scheme)
