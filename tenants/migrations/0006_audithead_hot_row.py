"""The chain's counter rows (``AuditHead``) are the hottest rows of the database: every audit
append of a tenant updates its tenant's one row. On PostgreSQL autovacuum now visits their table
after every thousand dead row versions, without pausing, rather than once a fifth of the table
is dead (for a table of one row a tenant: 50 dead versions, then ever later as vacuum found
them). Under concurrent appends the page-level pruning of old versions often cannot take its
page lock (the waiting appenders hold the page), so dead versions pile up and every append
follows them: measured in bench/ingest, PostgreSQL's CPU a single output 840 us with 523 dead
versions against 615 us just after a VACUUM (bench/README.md)."""

from django.db import migrations

TABLE = "tenants_audithead"
SETTINGS = (
    "autovacuum_vacuum_scale_factor = 0",
    "autovacuum_vacuum_threshold = 1000",
    "autovacuum_vacuum_cost_delay = 0",
)


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} SET ({', '.join(SETTINGS)})")


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        names = ", ".join(setting.split(" = ")[0] for setting in SETTINGS)
        schema_editor.execute(f"ALTER TABLE {TABLE} RESET ({names})")


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_quality_lead_role")]

    operations = [migrations.RunPython(tune, untune)]
