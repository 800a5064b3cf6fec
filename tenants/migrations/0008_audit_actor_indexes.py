"""The audit events' actor indexes lead with the tenant and are partial.

The API filters a tenant's events by person or by key, newest first by seq: one index each,
``(tenant, actor, seq)``, answers that in order. Each holds only the events that name such an
actor: an event made with a service key (an ingested output's) or by a signed-in person (a
page's) is written into one of them, the system's into neither, one made with a person's key
into both (before, every event wrote an entry into each, null or not). The new indexes are built
without holding the audit chain's writers (``AddIndexOnline``). The actor references have no database
constraint, so their own single-column indexes are dropped by name (an AlterField would
rebuild SQLite's table, and the append-only audit table with it).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from hitl.migration_operations import AddIndexOnline, field_index_dropped


class Migration(migrations.Migration):
    atomic = False  # the new indexes are built without holding writes (AddIndexOnline)

    dependencies = [
        ("tenants", "0007_tenant_key_covered"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="actor_key",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        help_text="The API key used, if any.",
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="tenants.apikey",
                    ),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="actor_person",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        help_text="The person who acted, if any.",
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                field_index_dropped("tenants_auditevent", "actor_key_id", "tenants_auditevent_actor_key_id_1c866d7f"),
                field_index_dropped("tenants_auditevent", "actor_person_id", "tenants_auditevent_actor_person_id_469828da"),
            ],
        ),
        AddIndexOnline(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("actor_person__isnull", False)),
                fields=["tenant", "actor_person", "seq"],
                name="auditevent_tenant_person",
            ),
        ),
        AddIndexOnline(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("actor_key__isnull", False)),
                fields=["tenant", "actor_key", "seq"],
                name="auditevent_tenant_key",
            ),
        ),
    ]
