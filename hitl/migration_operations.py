"""Migration operations of the project's own (plumbing: any app's migrations may use them)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db.migrations import AddIndex, RunSQL

from hitl.tenancy import no_tenant


class AddIndexOnline(AddIndexConcurrently):
    """``AddIndex`` that lets writes go on while PostgreSQL builds the index (``CREATE INDEX
    CONCURRENTLY``: for the large, hot tables, whose plain build would hold ingest, claims or the
    audit chain for as long as it reads the table). The migration must say ``atomic = False``.
    Elsewhere (SQLite, one writer anyway) a plain ``AddIndex``.

    The statement goes without a tenant scope: a scope is sent in a pipeline with the statement
    (hitl.tenancy.apply_scope), and PostgreSQL refuses a concurrent build inside one; DDL reads
    no rows under row-level security, so it needs none."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
        with no_tenant():
            return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
        with no_tenant():
            return super().database_backwards(app_label, schema_editor, from_state, to_state)


def field_index_dropped(table: str, column: str, name: str) -> RunSQL:
    """Drop the index Django made for a field (``name``, as its schema editor named it), re-made
    on the way back: for a ``SeparateDatabaseAndState`` whose state says ``db_index=False``
    (Django's AlterField would drop and re-add the field's foreign key, revalidating every row
    under lock, and rebuild the table on SQLite)."""
    return RunSQL(f'DROP INDEX IF EXISTS "{name}"', f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")')
