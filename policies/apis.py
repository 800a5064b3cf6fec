"""REST endpoints for the risk policy, application overrides (the stop button), rubrics and judges.

Every body is the documented pydantic model, serialized (:func:`hitl.api.respond`). What a
GET returns can be sent back with PUT/POST as it is: its read-only fields are checked against
the current version (:func:`hitl.api.read_only_check`), so that an update made to a stale copy
is a 409 ``stale_version`` instead of silently undoing someone else's change.
"""

import re

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import BaseModel, ConfigDict
from rest_framework import status

from hitl.api import TenantApi, error_responses, json_object, read_only_check, respond, take, validate_body
from hitl.errors import DomainValidationError, NotFoundError, StaleVersionError
from policies import schemas
from policies.selectors import (
    judge_get,
    judge_history,
    judge_list,
    policy_current,
    policy_versions,
    rubric_get,
    rubric_list,
)
from policies.services import application_override_set, judge_create, judge_update, policy_publish, rubric_publish
from tenants.models import KeyRoles

ADMIN = KeyRoles.ADMIN
CONFIG_READERS = KeyRoles.CONFIG_READERS
APPLICATION_NAME = re.compile(schemas.APPLICATION_NAME_PATTERN)


def _actor(api_key):
    """The person behind a key, for history; None for a key of no one."""
    return api_key.user if api_key.user_id else None


def _stale(description: str) -> dict:
    return {409: OpenApiResponse(error_responses(409)[409].response, description=description)}


class _Reason(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: schemas.Reason = ""


class PolicyApi(TenantApi):
    """``GET /api/v1/policy`` the current version; ``PUT`` publishes a new one (admin)."""

    permission_map = {"GET": CONFIG_READERS, "PUT": ADMIN}

    @extend_schema(
        operation_id="policy_retrieve", responses={200: schemas.PolicyVersionOut, **error_responses(401, 403)}
    )
    def get(self, request):
        return respond(schemas.PolicyVersionOut.of(policy_current(tenant=self.tenant)))

    @extend_schema(
        operation_id="policy_publish",
        request=schemas.PolicyUpdate,
        responses={
            200: OpenApiResponse(schemas.PolicyVersionOut, description="The new version."),
            **error_responses(400, 401, 403, 422),
            **_stale(
                "stale_version: the read-only fields sent back (version, changed_at, changed_by) are not "
                "those of the current version: someone published since the copy was read."
            ),
        },
    )
    def put(self, request):
        body = dict(json_object(request.data))
        sent = take(schemas.PolicyCopy, body)
        reason = take(_Reason, body).reason
        expected = read_only_check(
            sent, schemas.PolicyVersionOut.of(policy_current(tenant=self.tenant)), what="the policy"
        )
        policy = policy_publish(
            tenant=self.tenant, document=body, user=_actor(self.api_key), reason=reason, expected_version=expected
        )
        return respond(schemas.PolicyVersionOut.of(policy_current(tenant=self.tenant, policy=policy)))


class PolicyHistoryApi(TenantApi):
    """``GET /api/v1/policy/history``: every published version, newest first, with who and why."""

    permission_map = {"GET": KeyRoles.AUDIT}

    @extend_schema(
        operation_id="policy_history",
        parameters=[
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000},
                description="At most this many versions (default 100, max 1000).",
            )
        ],
        responses={200: schemas.PolicyHistoryOut, **error_responses(400, 401, 403)},
    )
    def get(self, request):
        raw_limit = request.query_params.get("limit", "100")
        if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not 1 <= int(raw_limit) <= 1000:
            raise DomainValidationError("limit: an integer from 1 to 1000", fields={"limit": ["1 to 1000."]})
        versions = policy_versions(tenant=self.tenant, limit=int(raw_limit))
        return respond(schemas.PolicyHistoryOut(results=[schemas.PolicyVersionOut.of(item) for item in versions]))


APPLICATION_NAME_PARAMETER = OpenApiParameter(
    "name",
    {"type": "string", "minLength": 1, "maxLength": 100, "pattern": schemas.APPLICATION_NAME_PATTERN},
    OpenApiParameter.PATH,
    description="The application, as outputs name it.",
)


class ApplicationOverrideApi(TenantApi):
    """``PUT /api/v1/applications/{name}/override``: the stop button, effective from the next request."""

    permission_map = {"PUT": ADMIN}

    @extend_schema(
        operation_id="application_override_set",
        parameters=[APPLICATION_NAME_PARAMETER],
        request=schemas.OverrideUpdate,
        responses={200: schemas.ApplicationOut, **error_responses(400, 401, 403, 422)},
    )
    def put(self, request, name: str):
        if len(name) > 100 or not APPLICATION_NAME.fullmatch(name):
            message = f"An application name: {schemas.APPLICATION_NAME_RULE}."
            raise DomainValidationError(f"name: {message}", fields={"name": [message]})
        update = validate_body(schemas.OverrideUpdate, request.data)
        application = application_override_set(
            tenant=self.tenant, name=name, mode=update.mode, user=_actor(self.api_key), reason=update.reason
        )
        return respond(schemas.ApplicationOut.of(application))


class RubricCollectionApi(TenantApi):
    """``GET /api/v1/rubrics`` lists rubrics; ``POST`` creates one or publishes a new version of it (admin)."""

    permission_map = {"GET": CONFIG_READERS, "POST": ADMIN}

    @extend_schema(operation_id="rubrics_list", responses={200: schemas.RubricList, **error_responses(401, 403)})
    def get(self, request):
        return respond(
            schemas.RubricList(results=[schemas.RubricOut.of(rubric) for rubric in rubric_list(tenant=self.tenant)])
        )

    @extend_schema(
        operation_id="rubrics_publish",
        request=schemas.RubricPublish,
        responses={
            201: OpenApiResponse(schemas.RubricOut, description="Created (version 1)."),
            200: OpenApiResponse(schemas.RubricOut, description="A new version of an existing rubric."),
            **error_responses(400, 401, 403, 422),
            **_stale(
                "stale_version: the read-only fields sent back (version, updated_at) are not those of the "
                "rubric's current version: it changed since the copy was read."
            ),
        },
    )
    def post(self, request):
        body = dict(json_object(request.data))
        options = take(schemas.RubricPublishOptions, body)
        sent = take(schemas.RubricCopy, body)
        expected = None
        if sent.model_fields_set and isinstance(body.get("name"), str):
            name = body["name"]
            try:
                current = schemas.RubricOut.of(rubric_get(tenant=self.tenant, name=name))
            except NotFoundError:
                current = None
            if current is None:
                message = f"There is no rubric '{name}' to have a copy of; leave the read-only fields out to create it."
                field = sorted(sent.model_fields_set)[0]
                raise StaleVersionError(f"{field}: {message}", fields={field: [message]})
            expected = read_only_check(sent, current, what=f"rubric '{name}'")
        rubric, created = rubric_publish(
            tenant=self.tenant,
            document=body,
            user=_actor(self.api_key),
            expected_version=expected,
            require_recertification=options.require_recertification,
        )
        return respond(schemas.RubricOut.of(rubric), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RubricDetailApi(TenantApi):
    """``GET /api/v1/rubrics/{name}``: the current version of one rubric."""

    permission_map = {"GET": CONFIG_READERS}

    @extend_schema(
        operation_id="rubrics_retrieve",
        parameters=[
            OpenApiParameter(
                "name",
                {"type": "string", "minLength": 1, "maxLength": 50, "pattern": "^[a-z0-9][a-z0-9_-]*$"},
                OpenApiParameter.PATH,
            )
        ],
        responses={200: schemas.RubricOut, **error_responses(401, 403, 404)},
    )
    def get(self, request, name: str):
        return respond(schemas.RubricOut.of(rubric_get(tenant=self.tenant, name=name)))


# Judges ---------------------------------------------------------------------


class JudgeCollectionApi(TenantApi):
    """``GET /api/v1/judges`` lists the tenant's judges; ``POST`` creates one (admin)."""

    permission_map = {"GET": KeyRoles.AUDIT, "POST": ADMIN}

    @extend_schema(operation_id="judges_list", responses={200: schemas.JudgeList, **error_responses(401, 403)})
    def get(self, request):
        return respond(
            schemas.JudgeList(results=[schemas.JudgeOut.of(judge) for judge in judge_list(tenant=self.tenant)])
        )

    @extend_schema(
        operation_id="judges_create",
        request=schemas.JudgeSpec,
        responses={201: schemas.JudgeOut, **error_responses(400, 401, 403, 409, 422)},
    )
    def post(self, request):
        judge = judge_create(tenant=self.tenant, data=dict(json_object(request.data)), user=_actor(self.api_key))
        return respond(schemas.JudgeOut.of(judge), status=status.HTTP_201_CREATED)


class JudgeDetailApi(TenantApi):
    """``GET /api/v1/judges/{id}``; ``PUT`` replaces its configuration as a new version (admin).

    Judges are deactivated (``is_active: false``), not deleted: their verdicts stay.
    """

    permission_map = {"GET": KeyRoles.AUDIT, "PUT": ADMIN}

    @extend_schema(operation_id="judges_retrieve", responses={200: schemas.JudgeOut, **error_responses(401, 403, 404)})
    def get(self, request, judge_id: int):
        return respond(schemas.JudgeOut.of(judge_get(tenant=self.tenant, judge_id=judge_id)))

    @extend_schema(
        operation_id="judges_update",
        request=schemas.JudgeUpdate,
        responses={
            200: schemas.JudgeOut,
            **error_responses(400, 401, 403, 404, 422),
            **_stale(
                "judge_exists: another judge has this name; stale_version: the read-only fields sent back "
                "(id, api_key_set, version, updated_at) are not those of this judge's current version."
            ),
        },
    )
    def put(self, request, judge_id: int):
        body = dict(json_object(request.data))
        sent = take(schemas.JudgeCopy, body)
        expected = read_only_check(
            sent, schemas.JudgeOut.of(judge_get(tenant=self.tenant, judge_id=judge_id)), what=f"judge {judge_id}"
        )
        judge = judge_update(
            tenant=self.tenant, judge_id=judge_id, data=body, user=_actor(self.api_key), expected_version=expected
        )
        return respond(schemas.JudgeOut.of(judge))


class JudgeHistoryApi(TenantApi):
    """``GET /api/v1/judges/{id}/history``: every version, newest first, with who and why (never the key)."""

    permission_map = {"GET": KeyRoles.AUDIT}

    @extend_schema(
        operation_id="judges_history", responses={200: schemas.JudgeHistoryOut, **error_responses(401, 403, 404)}
    )
    def get(self, request, judge_id: int):
        records = judge_history(tenant=self.tenant, judge_id=judge_id)
        return respond(schemas.JudgeHistoryOut(results=[schemas.JudgeVersionOut.of(record) for record in records]))
