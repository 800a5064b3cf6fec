"""The Django admin shows each staff user only the tenants they administer."""

import pytest
from django.contrib import admin

from reviews.models import Output
from tenants.models import ApiKey
from tenants.services import membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload


@pytest.fixture
def tenant_admin(tenant):
    person = UserFactory(is_staff=True)
    membership_create(tenant=tenant, user=person, role="admin")
    from django.contrib.auth.models import Permission

    person.user_permissions.set(
        Permission.objects.filter(codename__in=["view_output", "view_apikey", "add_apikey", "change_apikey"])
    )
    return person


@pytest.fixture
def two_tenants_with_outputs(tenant, other_tenant):
    make_client(tenant, "service").post("/api/v1/outputs", output_payload(1, output="mine"), format="json")
    make_client(other_tenant, "service").post("/api/v1/outputs", output_payload(2, output="theirs"), format="json")


def test_tenant_admin_sees_only_their_tenants_outputs(client, tenant_admin, two_tenants_with_outputs, other_tenant):
    client.force_login(tenant_admin)

    page = client.get("/admin/reviews/output/")
    assert page.status_code == 200
    assert "ext-1" in page.content.decode()
    assert "ext-2" not in page.content.decode()

    foreign = Output.objects.for_tenant(other_tenant).get()
    assert client.get(f"/admin/reviews/output/{foreign.pk}/change/").status_code in (302, 404)


def test_api_key_created_in_admin_is_shown_once(client, tenant_admin, tenant, other_tenant):
    client.force_login(tenant_admin)

    form = client.get("/admin/tenants/apikey/add/").content.decode()
    assert other_tenant.slug not in form  # only administered tenants are offered
    response = client.post(
        "/admin/tenants/apikey/add/", {"tenant": tenant.pk, "name": "from admin", "role": "service"}, follow=True
    )

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    raw_key = next(text.split(": ")[-1] for text in shown if "not shown again" in text)
    api_key = ApiKey.objects.for_tenant(tenant).get(name="from admin")
    assert raw_key.startswith(f"hitl_{api_key.prefix}_")
    assert raw_key not in client.get(f"/admin/tenants/apikey/{api_key.pk}/change/").content.decode()


def test_api_key_admin_form_explains_role_rules(client, tenant_admin, tenant):
    client.force_login(tenant_admin)

    response = client.post("/admin/tenants/apikey/add/", {"tenant": tenant.pk, "name": "r", "role": "reviewer"})

    assert response.status_code == 200
    # api_key_create's refusal, on the field it names
    assert response.context["adminform"].form.errors["user"] == [
        "Required for role reviewer: a reviewer key acts for a person."
    ]
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_admin_cannot_add_or_edit_outputs(admin_client, two_tenants_with_outputs):
    assert admin_client.get("/admin/reviews/output/add/").status_code == 403
    output = Output.unscoped.first()
    response = admin_client.post(f"/admin/reviews/output/{output.pk}/change/", {"output": "edited"})
    assert response.status_code == 403
    output.refresh_from_db()
    assert output.output != "edited"


def test_a_webhook_url_with_user_info_is_refused_in_the_admin_too(admin_client, tenant):
    from reviews.models import WebhookEndpoint

    response = admin_client.post(
        "/admin/reviews/webhookendpoint/add/",
        {"tenant": tenant.pk, "url": "https://user:pass@hooks.example/x", "secret": "s" * 20, "is_active": "on"},
    )

    assert response.status_code == 200  # the form again, with its error
    assert "must not contain user-info" in response.content.decode()
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()


# The structural guard: every admin of a domain model writes through project code (which
# calls the services), or cannot write at all. Django's, guardian's and simple-history's
# defaults save the model directly, past the services' rules and side effects.
PROJECT_PACKAGES = {"hitl", "tenants", "policies", "reviews"}


def _defined_in_project(model_admin, name: str) -> bool:
    owner = next(klass for klass in type(model_admin).__mro__ if name in vars(klass))
    return owner.__module__.split(".")[0] in PROJECT_PACKAGES


def _write_paths_past_the_services(model_admin, request) -> list[str]:
    from django.contrib.admin.actions import delete_selected
    from guardian.admin import GuardedModelAdminMixin
    from simple_history.admin import SimpleHistoryAdmin

    problems = []
    can_add, can_change = model_admin.has_add_permission(request), model_admin.has_change_permission(request)
    if (can_add or can_change) and not _defined_in_project(model_admin, "save_model"):
        problems.append("saves with the default save_model")
    can_delete = model_admin.has_delete_permission(request)
    for name in ("delete_model", "delete_queryset"):
        if can_delete and not _defined_in_project(model_admin, name):
            problems.append(f"deletes with the default {name}")
    for name, (action, *_) in model_admin.get_actions(request).items():
        if action is delete_selected:
            if not _defined_in_project(model_admin, "delete_queryset"):
                problems.append("bulk-deletes with the default delete_queryset")
        elif action.__module__.split(".")[0] not in PROJECT_PACKAGES:
            problems.append(f"action {name} is not the project's")
    if isinstance(model_admin, GuardedModelAdminMixin):
        for name in ("obj_perms_manage_user_view", "obj_perms_manage_group_view"):
            if not _defined_in_project(model_admin, name):
                problems.append(f"grants object permissions with guardian's {name}")
    if isinstance(model_admin, SimpleHistoryAdmin) and not _defined_in_project(model_admin, "history_form_view"):
        problems.append("restores old versions with simple-history's history_form_view")
    return problems


DOMAIN_ADMINS = [
    model_admin for model, model_admin in admin.site._registry.items() if model._meta.app_label in PROJECT_PACKAGES
]


@pytest.fixture
def superuser_post(rf, admin_user):
    request = rf.post("/admin/")  # ReadOnlyAdmin allows GET only: ask about a write
    request.user = admin_user
    return request


@pytest.mark.parametrize("model_admin", DOMAIN_ADMINS, ids=lambda model_admin: model_admin.model.__name__)
def test_every_domain_admin_writes_through_project_code(model_admin, superuser_post):
    assert _write_paths_past_the_services(model_admin, superuser_post) == []


def test_the_guard_sees_every_domain_admin_and_catches_a_plain_one(superuser_post):
    from reviews.models import WebhookEndpoint

    assert {"Tenant", "Membership", "ApiKey", "Queue", "WebhookEndpoint", "Judge"} <= {
        model_admin.model.__name__ for model_admin in DOMAIN_ADMINS
    }
    plain = admin.ModelAdmin(WebhookEndpoint, admin.site)
    assert _write_paths_past_the_services(plain, superuser_post) == [
        "saves with the default save_model",
        "deletes with the default delete_model",
        "deletes with the default delete_queryset",
        "bulk-deletes with the default delete_queryset",
    ]
