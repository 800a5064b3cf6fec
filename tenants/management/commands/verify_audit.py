"""``manage.py verify_audit SLUG``: check a tenant's audit chain end to end; non-zero exit on any problem."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from hitl.tenancy import tenant_scope
from tenants.audit import audit_verify
from tenants.auditchain import report_text
from tenants.models import Tenant
from tenants.verification import audit_verification_record


class Command(BaseCommand):
    help = (
        "Verify a tenant's audit chain: seq without gaps, every hash recomputed, the links, the head "
        "(counter row), every signed checkpoint. Names the first bad seq and exits 1 when anything is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the tenant's slug")

    def handle(self, *args, slug: str, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant {slug!r}")
        started_at = timezone.now()
        with tenant_scope(tenant):  # row-level security: the command reads and records in this tenant only
            report = audit_verify(tenant)
            # Kept for the auditor's chain page (who ran it, when, the outcome, the first bad seq).
            audit_verification_record(tenant=tenant, report=report, started_at=started_at, source="command")
        text = report_text(report)
        if report.ok:
            self.stdout.write(text)
            return
        self.stderr.write(text)
        raise CommandError(
            f"audit chain of {slug} is not intact"
            + (f": first bad seq {report.bad_seq} ({report.reason})" if report.bad_seq is not None else "")
        )
