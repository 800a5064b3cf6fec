"""The tenant admin's console, ``/console/``: its overview, and the sections whose data the
reviews app owns (queues and who may work them, webhooks and their deliveries).

The other sections sit in the apps that own their data (members in ``tenants.console``;
policy, stop buttons, rubrics and judges in ``policies.console``); ``reviews.console_urls``
routes them all under one prefix. Every page is a ``tenants.pages.ConsolePage`` (admins of
the current tenant only) and writes through the same services as the API.
"""

import secrets

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect

from hitl.errors import ApplicationError, NotFoundError
from policies.models import Application, Judge, Override, Rubric
from policies.selectors import policy_get, policy_history
from reviews.models import DeliveryStatus, Queue, ReviewTask, TaskStatus, WebhookDelivery, WebhookEndpoint
from reviews.selectors import (
    queue_access_events,
    queue_get_for_tenant,
    queue_group_grants,
    queue_list,
    queue_workers,
    webhook_deliveries_recent,
    webhook_delivery_of,
    webhook_endpoints,
    webhook_get_for_tenant,
)
from reviews.services.queues import queue_create, queue_grant, queue_revoke, queue_update
from reviews.services.webhooks import webhook_delivery_replay, webhook_endpoint_create, webhook_endpoint_update
from tenants.models import Membership, Role
from tenants.pages import ConsoleForm, ConsolePage, form_errors_from
from tenants.selectors import members_of, membership_get_for_tenant


class ConsoleHome(ConsolePage):
    """``/console/``: each section with what an admin checks first."""

    section = "home"
    template_name = "reviews/console_home.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.tenant
        roles = dict(Membership.objects.for_tenant(tenant).values_list("role").annotate(n=Count("id")).order_by())
        webhooks = WebhookEndpoint.objects.for_tenant(tenant).aggregate(
            active=Count("id", filter=Q(is_active=True)), total=Count("id")
        )
        context.update(
            policy=policy_get(tenant=tenant),
            last_change=policy_history(tenant=tenant, limit=1).first(),
            stopped=list(
                Application.objects.for_tenant(tenant)
                .exclude(override=Override.NONE)
                .order_by("name")
                .values_list("name", "override")
            ),
            roles=sorted(roles.items()),
            members=sum(roles.values()),
            queues=Queue.objects.for_tenant(tenant).count(),
            pending_tasks=ReviewTask.objects.for_tenant(tenant).filter(status=TaskStatus.PENDING).count(),
            rubrics=Rubric.objects.for_tenant(tenant).count(),
            judges=Judge.objects.for_tenant(tenant).aggregate(
                active=Count("id", filter=Q(is_active=True)), total=Count("id")
            ),
            webhooks=webhooks,
            failed_deliveries=WebhookDelivery.objects.for_tenant(tenant).filter(status=DeliveryStatus.FAILED).count(),
        )
        return context


# Queues ---------------------------------------------------------------------------


def names_parse(text: str) -> list[str]:
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


class QueueForm(ConsoleForm):
    name = forms.CharField(max_length=100)
    tiers = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="Tiers that feed it; none ticked: every tier."
    )
    applications = forms.CharField(
        required=False, max_length=20_000, help_text="Applications that feed it, by commas; empty: all."
    )
    required_skills = forms.CharField(
        label="Required skills", required=False, max_length=1000, help_text="A reviewer needs all of them, by commas."
    )
    min_reviewer_level = forms.TypedChoiceField(
        label="Minimum reviewer level",
        choices=[(1, "1: entry level"), (2, "2: experienced"), (3, "3: specialist")],
        coerce=int,
        initial=1,
    )
    priority = forms.IntegerField(
        min_value=-1000, max_value=1000, initial=0, help_text="Higher first, among tasks due at the same time."
    )

    def __init__(self, *args, tiers=(), queue: Queue | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        names = list(tiers) + [tier for tier in (queue.tiers if queue else []) if tier not in tiers]
        self.fields["tiers"].choices = [(name, name) for name in names]
        if queue is not None:
            del self.fields["name"]  # the queue's name is how reviewers and routing know it

    def changes(self) -> dict:
        data = self.cleaned_data
        return {
            "tiers": data["tiers"],
            "applications": names_parse(data["applications"]),
            "required_skills": [skill.lower() for skill in names_parse(data["required_skills"])],
            "min_reviewer_level": data["min_reviewer_level"],
            "priority": data["priority"],
        }


def queue_initial(queue: Queue) -> dict:
    return {
        "tiers": queue.tiers,
        "applications": ", ".join(queue.applications),
        "required_skills": ", ".join(queue.required_skills),
        "min_reviewer_level": queue.min_reviewer_level,
        "priority": queue.priority,
    }


def _policy_tiers(tenant) -> list[str]:
    return [tier["name"] for tier in policy_get(tenant=tenant).document["tiers"]]


class QueuesPage(ConsolePage):
    """The queues with what they require and who may work them; a new queue."""

    section = "queues"
    template_name = "reviews/console_queues.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        queues = list(queue_list(tenant=self.tenant))
        ids = [queue.pk for queue in queues]
        workers = queue_workers(tenant=self.tenant, queue_ids=ids)
        groups = queue_group_grants(tenant=self.tenant, queue_ids=ids)
        pending = dict(
            ReviewTask.objects.for_tenant(self.tenant)
            .filter(status=TaskStatus.PENDING)
            .values_list("queue_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        context.update(
            queues=[
                {
                    "queue": queue,
                    "workers": workers[queue.pk],
                    "groups": groups[queue.pk],
                    "pending": pending.get(queue.pk, 0),
                }
                for queue in queues
            ]
        )
        context.setdefault("form", QueueForm(tiers=_policy_tiers(self.tenant)))
        return context

    def post(self, request):
        form = QueueForm(request.POST, tiers=_policy_tiers(self.tenant))
        if form.is_valid():
            try:
                queue = queue_create(tenant=self.tenant, name=form.cleaned_data["name"].strip(), **form.changes())
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, f"Queue {queue.name} created: now grant it to reviewers.")
                return redirect("console:queue", queue_id=queue.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class QueuePage(ConsolePage):
    """``/console/queues/<id>/``: its requirements, and granting or revoking who may work it."""

    section = "queues"
    template_name = "reviews/console_queue.html"

    def _queue(self, queue_id) -> Queue:
        try:
            return queue_get_for_tenant(tenant=self.tenant, queue_id=queue_id)
        except NotFoundError:
            raise Http404 from None

    def _render(self, queue, form, status=200):
        workers = queue_workers(tenant=self.tenant, queue_ids=[queue.pk])[queue.pk]
        granted = {user.pk for user in workers}
        members = members_of(tenant=self.tenant)
        reviewing = {membership.user_id: membership for membership in members if membership.role in Role.reviewing()}
        context = self.get_context_data(
            queue=queue,
            form=form,
            workers=[{"user": user, "membership": reviewing.get(user.pk)} for user in workers],
            groups=queue_group_grants(tenant=self.tenant, queue_ids=[queue.pk])[queue.pk],
            grantable=[membership for membership in reviewing.values() if membership.user_id not in granted],
            history=queue.history.select_related("history_user").order_by("-history_date")[:20],
            access=queue_access_events(tenant=self.tenant, queue_id=queue.pk, limit=20),
        )
        return self.render_to_response(context, status=status)

    def get(self, request, queue_id):
        queue = self._queue(queue_id)
        form = QueueForm(initial=queue_initial(queue), tiers=_policy_tiers(self.tenant), queue=queue)
        return self._render(queue, form)

    def post(self, request, queue_id):
        queue = self._queue(queue_id)
        action = request.POST.get("action", "update")
        if action in ("grant", "revoke"):
            return self._grant_or_revoke(request, queue, action)
        form = QueueForm(request.POST, tiers=_policy_tiers(self.tenant), queue=queue)
        if form.is_valid():
            try:
                queue_update(queue=queue, **form.changes())
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, f"Queue {queue.name} saved; new outputs route by it from now on.")
                return redirect("console:queue", queue_id=queue.pk)
        return self._render(queue, form, status=400)

    def _grant_or_revoke(self, request, queue, action):
        """Grant a member of the tenant; revoke someone who holds a grant on this queue (a former
        member's grant too). Anyone else is a 404."""
        if action == "grant":
            try:
                user = membership_get_for_tenant(tenant=self.tenant, membership_id=request.POST.get("member")).user
            except (NotFoundError, ValueError):
                raise Http404 from None
            try:
                queue_grant(queue=queue, user=user, actor=self.person)
            except ApplicationError as error:
                messages.error(request, f"{user.get_username()}: {error.message}")
                return redirect("console:queue", queue_id=queue.pk)
            messages.success(request, f"{user.get_username()} may work {queue.name}.")
        else:
            workers = queue_workers(tenant=self.tenant, queue_ids=[queue.pk])[queue.pk]
            user = next((user for user in workers if str(user.pk) == request.POST.get("user")), None)
            if user is None:
                raise Http404
            queue_revoke(queue=queue, user=user, actor=self.person)
            messages.success(request, f"{user.get_username()} may no longer work {queue.name}.")
        return redirect("console:queue", queue_id=queue.pk)


# Webhooks -------------------------------------------------------------------------


class WebhookForm(ConsoleForm):
    url = forms.CharField(
        label="URL", max_length=500, help_text="Where decisions are POSTed (https, a public address)."
    )
    description = forms.CharField(max_length=200, required=False)
    secret = forms.CharField(
        required=False,
        min_length=16,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The HMAC key receivers check signatures with, 16 to 200 characters. "
        "Leave empty to have one generated: it is shown once.",
    )


class WebhooksPage(ConsolePage):
    """The endpoints with their failed and pending deliveries; a new endpoint."""

    section = "webhooks"
    template_name = "reviews/console_webhooks.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", WebhookForm())
        context.update(endpoints=list(webhook_endpoints(tenant=self.tenant)))
        return context

    def post(self, request):
        form = WebhookForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            generated = not data["secret"]
            secret = data["secret"] or secrets.token_urlsafe(32)
            try:
                endpoint = webhook_endpoint_create(
                    tenant=self.tenant, url=data["url"].strip(), secret=secret, description=data["description"]
                )
            except ApplicationError as error:
                form_errors_from(form, error)
            else:
                messages.success(request, f"Webhook {endpoint.url} added: decisions go to it from now on.")
                if generated:
                    return self.render_to_response(self.get_context_data(new_secret=secret, new_endpoint=endpoint))
                return redirect("console:webhooks")
        return self.render_to_response(self.get_context_data(form=form), status=400)


class WebhookPage(ConsolePage):
    """``/console/webhooks/<id>/``: switch it off or on, its recent deliveries, replay one."""

    section = "webhooks"
    template_name = "reviews/console_webhook.html"

    def _endpoint(self, endpoint_id) -> WebhookEndpoint:
        try:
            return webhook_get_for_tenant(tenant=self.tenant, endpoint_id=endpoint_id)
        except NotFoundError:
            raise Http404 from None

    def get(self, request, endpoint_id):
        endpoint = self._endpoint(endpoint_id)
        context = self.get_context_data(
            endpoint=endpoint,
            deliveries=webhook_deliveries_recent(tenant=self.tenant, endpoint_id=endpoint.pk, limit=50),
            history=endpoint.history.select_related("history_user").order_by("-history_date")[:10],
        )
        return self.render_to_response(context)

    def post(self, request, endpoint_id):
        endpoint = self._endpoint(endpoint_id)
        action = request.POST.get("action")
        try:
            if action == "replay":
                delivery_id = request.POST.get("delivery", "")
                if not webhook_delivery_of(tenant=self.tenant, endpoint_id=endpoint.pk, delivery_id=delivery_id):
                    raise Http404
                webhook_delivery_replay(tenant=self.tenant, delivery_id=delivery_id)
                messages.success(request, "Delivery queued again: a fresh series of attempts, with the same id.")
            elif action in ("deactivate", "activate"):
                webhook_endpoint_update(
                    tenant=self.tenant, endpoint_id=endpoint.pk, is_active=action == "activate", actor=self.person
                )
                if action == "activate":
                    messages.success(request, f"{endpoint.url} is active again: new decisions go to it.")
                else:
                    messages.success(request, f"{endpoint.url} is switched off: pending deliveries to it end.")
            else:
                raise Http404
        except NotFoundError:
            raise Http404 from None
        except ApplicationError as error:
            messages.error(request, error.message)
        return redirect("console:webhook", endpoint_id=endpoint.pk)
