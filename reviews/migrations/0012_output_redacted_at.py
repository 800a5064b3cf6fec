# Retention (policies/retention.py, reviews/services/retention.py): when an output's payloads were
# redacted. It follows both leaves of the audit chain's and the compliance export's migrations.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reviews', '0010_compliance_export'),
        ('reviews', '0011_merge_20261129_2010'),
    ]

    operations = [
        migrations.AddField(
            model_name='output',
            name='redacted_at',
            field=models.DateTimeField(blank=True, help_text='When retention blanked its payloads (input, output, trace, final output, corrections, comments); its digests stay.', null=True),
        ),
    ]
