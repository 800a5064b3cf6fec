from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from hitl.errors import DomainValidationError
from hitl.tenancy import cross_tenant
from tenants.models import ApiKeyRole
from tenants.selectors import tenant_get_by_slug
from tenants.services import PLATFORM_OPERATOR, api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key and print it once: create_api_key SLUG --role ROLE [--user USERNAME] [--name NAME]. "
        "The platform operator's way to give a person a key (in the admin, people create only their own)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--role", required=True, choices=ApiKeyRole.values)
        parser.add_argument("--user", default=None, help="Username of a member the key acts for.")
        parser.add_argument("--name", default=None)

    @cross_tenant("management_command")
    def handle(self, *args, slug, role, user, name, **options):
        tenant = tenant_get_by_slug(slug=slug)
        if tenant is None:
            raise CommandError(f"No tenant with slug '{slug}'.")
        person = None
        if user:
            person = get_user_model().objects.filter(username=user).first()
            if person is None:
                raise CommandError(f"No user named '{user}'.")
        try:
            _, raw_key = api_key_create(
                tenant=tenant, role=role, user=person, name=name or f"{role} key", actor=PLATFORM_OPERATOR
            )
        except DomainValidationError as error:
            raise CommandError(error.message) from error
        # The key alone on stdout so that scripts can capture it; it is never shown again.
        self.stdout.write(raw_key)
