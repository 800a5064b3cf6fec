from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HitlConfig(AppConfig):
    name = "hitl"
    verbose_name = "HITL platform"

    def ready(self):
        from hitl import isolation

        # After every migrate (and flush): composite keys, row-level security, the app role.
        post_migrate.connect(isolation.apply_after_migrate, sender=self, dispatch_uid="hitl.isolation")
