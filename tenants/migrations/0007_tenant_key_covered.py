"""The audit tables' own index on tenant_id goes: (tenant, seq) and (tenant) are unique and lead with it.

Only the indexes are dropped: Django's AlterField would also drop and re-add the foreign keys,
revalidating every row of these large tables under lock."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0006_audithead_hot_row"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
                migrations.AlterField(
                    model_name="audithead",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "tenants_auditevent_tenant_id_45dbc5b7"',
                    'CREATE INDEX IF NOT EXISTS "tenants_auditevent_tenant_id_45dbc5b7" ON "tenants_auditevent" ("tenant_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "tenants_audithead_tenant_id_931c6d83"',
                    'CREATE INDEX IF NOT EXISTS "tenants_audithead_tenant_id_931c6d83" ON "tenants_audithead" ("tenant_id")',
                ),
            ],
        ),
    ]
