from django.db import migrations


def create_default_policies(apps, schema_editor):
    from policies.defaults import DEFAULT_POLICY

    Tenant = apps.get_model("tenants", "Tenant")
    Policy = apps.get_model("policies", "Policy")
    have = set(Policy._default_manager.values_list("tenant_id", flat=True))
    Policy._default_manager.bulk_create(
        Policy(tenant_id=tenant_id, version=1, document=DEFAULT_POLICY)
        for tenant_id in Tenant._default_manager.exclude(pk__in=have).values_list("pk", flat=True)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("policies", "0001_initial"),
        ("tenants", "0002_tenant_config_token"),
    ]

    operations = [migrations.RunPython(create_default_policies, migrations.RunPython.noop)]
