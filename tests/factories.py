"""factory_boy factories that keep one tenant consistent across related rows."""

import factory
from django.contrib.auth import get_user_model

from reviews.schemas import OutputSubmission
from reviews.services.onboarding import tenant_onboard
from tenants.models import Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Through the service, as in production: a tenant starts with the default policy.
        return tenant_onboard(**kwargs)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("pw")


def output_payload(number: int = 1, **overrides) -> dict:
    """A valid submission body as a service would send it."""
    payload = {
        "external_id": f"ext-{number}",
        "application": "support-bot",
        "input": [{"role": "user", "content": f"Question {number}?"}],
        "output": f"Answer {number}.",
        "trace": [{"type": "retrieval", "documents": ["doc-1"]}, {"type": "llm", "tokens": 42}],
        "metadata": {"category": "billing", "locale": "en"},
        "model": "gpt-4o-mini",
        "confidence": 0.87,
    }
    payload.update(overrides)
    return payload


def output_submission(number: int = 1, **overrides) -> OutputSubmission:
    return OutputSubmission.model_validate(output_payload(number, **overrides))
