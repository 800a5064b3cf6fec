"""``flush`` as the tables' owner: the application's role may not TRUNCATE (append-only audit rows).

The test suite's transactional tests flush the database between tests through this command.
"""

from django.core.management.commands import flush
from django.db import connections

from hitl.tenancy import as_owner


class Command(flush.Command):
    def handle(self, **options):
        with as_owner(connections[options["database"]]):
            return super().handle(**options)
