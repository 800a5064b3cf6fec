"""``migrate`` as the tables' owner: the application's role (``DATABASE_APP_ROLE``) may not change the schema."""

from django.core.management.commands import migrate
from django.db import connections

from hitl.tenancy import as_owner


class Command(migrate.Command):
    def handle(self, *args, **options):
        with as_owner(connections[options["database"]]):
            return super().handle(*args, **options)
