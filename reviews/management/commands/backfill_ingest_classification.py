from django.core.management.base import BaseCommand, CommandError

from hitl.tenancy import cross_tenant, tenant_scope
from reviews.services.classification import ingest_classification_backfill
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Once after upgrading past reviews migration 0021: keep the ingest's tier and reason of outputs the "
        "judges (or an adjudication, a second look, a thumbs-down) changed before, where the output's digest "
        "proves them, so that their stories and exports verify. backfill_ingest_classification [SLUG ...]"
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="tenants (default: every tenant)")

    @cross_tenant("management_command")
    def handle(self, *args, slugs, **options):
        tenants = Tenant.objects.order_by("slug")
        if slugs:
            tenants = tenants.filter(slug__in=slugs)
            missing = set(slugs) - set(tenants.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No tenant {', '.join(sorted(missing))}.")
        unrecoverable = 0
        for tenant in list(tenants):
            with tenant_scope(tenant):
                counts = ingest_classification_backfill(tenant=tenant)
            unrecoverable += counts["unrecoverable"]
            self.stdout.write(
                f"{tenant.slug}: {counts['checked']} outputs checked, {counts['recovered']} kept again, "
                f"{counts['unrecoverable']} whose classification no candidate reproduces"
            )
        if unrecoverable:
            self.stdout.write(
                self.style.WARNING(
                    f"{unrecoverable} outputs keep no ingest classification: the verifier names them "
                    "(docs/compliance.md)."
                )
            )
