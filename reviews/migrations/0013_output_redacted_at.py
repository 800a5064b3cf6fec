# Retention (policies/retention.py, reviews/services/retention.py): when an output's payloads were
# redacted. It follows the compliance export's migration (after the audit chain's).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reviews', '0012_compliance_export'),
    ]

    operations = [
        migrations.AddField(
            model_name='output',
            name='redacted_at',
            field=models.DateTimeField(blank=True, help_text='When retention blanked its payloads (input, output, trace, final output, corrections, comments); its digests stay.', null=True),
        ),
    ]
