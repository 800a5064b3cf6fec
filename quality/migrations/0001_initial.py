"""The quality layer's first migration: no tables yet; each feature's migration follows it."""

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies = [("reviews", "0013_output_redacted_at")]
    operations: list = []
