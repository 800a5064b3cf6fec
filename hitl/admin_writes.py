"""The Django admin writes through services; this is how their refusals reach the person.

An admin's ``save_model``, ``delete_model`` and actions call the same services as
the API, so the admin validates exactly as the API does. When a service refuses
(a rule the form does not repeat, or a race the form could not see), the change is
rolled back and the form comes back with the service's messages on the fields they
name, instead of a 500.
"""

from django import forms
from django.contrib import messages
from django.db import transaction

from hitl.errors import ApplicationError


def service_error_to_form(form: forms.BaseForm, error: ApplicationError) -> None:
    """Put a service's messages on the form: on the field they name when the form has it."""
    if not error.fields:
        form.add_error(None, error.message)
        return
    for name, field_messages in error.fields.items():
        root, _, rest = name.partition(".")
        field = name if name in form.fields else root if root in form.fields else None
        for message in field_messages:
            if field == name:
                form.add_error(field, message)
            elif field is not None:  # "params.base_url" on the params field
                form.add_error(field, f"{rest}: {message}")
            else:
                form.add_error(None, f"{name}: {message}")


class ServiceWritesAdminMixin:
    """Shows a service's refusal on the change form, and runs actions item by item through a service."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as error:
            if request.method != "POST" or hasattr(request, "_service_refusal"):
                raise
            # Django ran the POST in one transaction, now rolled back: nothing of it is
            # written. The second pass shows the same form with the refusal on it.
            request._service_refusal = error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, "_service_refusal", None)
        if refusal is None:
            return form_class

        class RefusedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                service_error_to_form(self, refusal)
                return cleaned

        return RefusedForm

    def each_through_service(self, request, items, call, *, done: str) -> None:
        """An admin action: ``call(item)`` for each item, each in its own transaction; refusals are listed."""
        succeeded, refusals = 0, []
        for item in items:
            try:
                with transaction.atomic():
                    call(item)
            except ApplicationError as error:
                refusals.append(f"{item}: {error.message}")
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{succeeded} {done}.", messages.SUCCESS)
        for refusal in refusals:
            self.message_user(request, refusal, messages.ERROR)
