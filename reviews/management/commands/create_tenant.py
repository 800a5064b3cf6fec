from django.core.management.base import BaseCommand, CommandError

from hitl.errors import DomainValidationError
from hitl.tenancy import cross_tenant
from reviews.services.onboarding import tenant_onboard


class Command(BaseCommand):
    help = "Create a tenant: create_tenant SLUG [--name NAME]"

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    @cross_tenant("management_command")
    def handle(self, *args, slug, name, **options):
        try:
            tenant = tenant_onboard(slug=slug, name=name)
        except DomainValidationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Created tenant {tenant.slug} (id {tenant.pk}).")
