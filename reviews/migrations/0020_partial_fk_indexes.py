"""Foreign-key indexes that held mostly nulls become partial; two that another index covers go.

- ``output.decided_by``, ``task.claimed_by``, ``task.rubric``, ``review.rubric``: indexed only
  where set. Most outputs are never decided by a person and a new task has no holder (and often
  no rubric), so ingest wrote a null entry into each of these for every output and task.
- ``review.output`` and ``review.tenant`` lose their own index: the unique (output, reviewer)
  and (tenant, created_at) lead with them.

The new indexes are built without holding ingest's or the claims' writes (``AddIndexOnline``:
``CREATE INDEX CONCURRENTLY`` on PostgreSQL). Only the indexes change: the old ones are dropped
by name (Django's AlterField would drop and re-add the foreign keys, revalidating every row
under lock; on SQLite it rebuilds the table).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from hitl.migration_operations import AddIndexOnline, field_index_dropped


class Migration(migrations.Migration):
    atomic = False  # the new indexes are built without holding writes (AddIndexOnline)

    dependencies = [
        ("policies", "0009_application_statistics"),
        ("reviews", "0019_tenant_key_covered"),
        ("tenants", "0008_audit_actor_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="output",
                    name="decided_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="review",
                    name="output",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="reviews",
                        to="reviews.output",
                    ),
                ),
                migrations.AlterField(
                    model_name="review",
                    name="rubric",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="policies.rubric",
                    ),
                ),
                migrations.AlterField(
                    model_name="review",
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
                    name="claimed_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="reviewtask",
                    name="rubric",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="policies.rubric",
                    ),
                ),
            ],
            database_operations=[
                field_index_dropped("reviews_output", "decided_by_id", "reviews_output_decided_by_id_ece879b3"),
                field_index_dropped("reviews_review", "output_id", "reviews_review_output_id_92c7c592"),
                field_index_dropped("reviews_review", "rubric_id", "reviews_review_rubric_id_1ee46ba9"),
                field_index_dropped("reviews_review", "tenant_id", "reviews_review_tenant_id_146c76a8"),
                field_index_dropped("reviews_reviewtask", "claimed_by_id", "reviews_reviewtask_claimed_by_id_9561d6b1"),
                field_index_dropped("reviews_reviewtask", "rubric_id", "reviews_reviewtask_rubric_id_0d084588"),
            ],
        ),
        AddIndexOnline(
            model_name="output",
            index=models.Index(
                condition=models.Q(("decided_by__isnull", False)), fields=["decided_by"], name="output_decided_by"
            ),
        ),
        AddIndexOnline(
            model_name="review",
            index=models.Index(condition=models.Q(("rubric__isnull", False)), fields=["rubric"], name="review_rubric"),
        ),
        AddIndexOnline(
            model_name="reviewtask",
            index=models.Index(
                condition=models.Q(("claimed_by__isnull", False)), fields=["claimed_by"], name="task_claimed_by"
            ),
        ),
        AddIndexOnline(
            model_name="reviewtask",
            index=models.Index(condition=models.Q(("rubric__isnull", False)), fields=["rubric"], name="task_rubric"),
        ),
    ]
