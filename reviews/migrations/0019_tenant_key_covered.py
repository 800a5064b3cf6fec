"""Outputs' and tasks' own index on tenant_id, and tasks' second index on output_id (task_output is the
first), go: other indexes lead with those columns, and each cost every insert an index entry.

Only the indexes are dropped: Django's AlterField would also drop and re-add the foreign keys,
revalidating every row of these large tables under lock."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0018_certification_expiry_gold_time_spent"),
        ("tenants", "0007_tenant_key_covered"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="output",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
                migrations.AlterField(
                    model_name="reviewtask",
                    name="output",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tasks",
                        to="reviews.output",
                    ),
                ),
                migrations.AlterField(
                    model_name="reviewtask",
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
                    'DROP INDEX IF EXISTS "reviews_output_tenant_id_df7833f8"',
                    'CREATE INDEX IF NOT EXISTS "reviews_output_tenant_id_df7833f8" ON "reviews_output" ("tenant_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "reviews_reviewtask_output_id_392301a5"',
                    'CREATE INDEX IF NOT EXISTS "reviews_reviewtask_output_id_392301a5" ON "reviews_reviewtask" ("output_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "reviews_reviewtask_tenant_id_4323c926"',
                    'CREATE INDEX IF NOT EXISTS "reviews_reviewtask_tenant_id_4323c926" ON "reviews_reviewtask" ("tenant_id")',
                ),
            ],
        ),
    ]
