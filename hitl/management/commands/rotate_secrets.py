from django.core.management.base import BaseCommand, CommandError

from hitl.crypto import SecretDecryptionError, secrets_rotate
from hitl.tenancy import cross_tenant


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (judge API keys, webhook secrets) with the first key of "
        "HITL_SECRET_KEYS. Rotation: put the new key first, keep the old ones after it, deploy, run "
        "this, then drop the old keys. Safe to run again; secrets already under the first key are left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="Rows locked and rewritten at a time.")

    @cross_tenant("management_command")
    def handle(self, *args, batch_size, **options):
        try:
            report = secrets_rotate(batch_size=batch_size)
        except SecretDecryptionError as error:
            raise CommandError(str(error)) from error
        for label, (rotated, current) in report.items():
            self.stdout.write(f"{label}: {rotated} re-encrypted, {current} already under the first key")
        total = sum(rotated for rotated, _ in report.values())
        self.stdout.write(
            self.style.SUCCESS(f"{total} secrets re-encrypted; every stored secret is now under the first key.")
        )
