"""REST endpoints for the risk policy, application overrides (the stop button) and rubrics."""

import re

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from hitl.api import TenantApi, error_responses, json_object, validate_body
from hitl.errors import DomainValidationError
from policies import schemas
from policies.selectors import (
    judge_get,
    judge_history,
    judge_list,
    policy_get,
    policy_history,
    rubric_get,
    rubric_list,
)
from policies.services import application_override_set, judge_create, judge_update, policy_publish, rubric_publish
from tenants.models import KeyRoles

ADMIN = KeyRoles.ADMIN
CONFIG_READERS = KeyRoles.CONFIG_READERS
APPLICATION_NAME = re.compile(schemas.APPLICATION_NAME_PATTERN)


def _policy_body(policy) -> dict:
    return {"version": policy.version, **policy.document, "updated_at": policy.updated_at}


def _history_body(record) -> dict:
    user = record.history_user
    return {
        "version": record.version,
        **record.document,
        "changed_at": record.history_date,
        "changed_by": user.get_username() if user else None,
        "reason": record.history_change_reason or "",
    }


def _actor(api_key):
    """The person behind a key, for history; None for a key of no one."""
    return api_key.user if api_key.user_id else None


class PolicyApi(TenantApi):
    """``GET /api/v1/policy`` the current version; ``PUT`` publishes a new one (admin)."""

    permission_map = {"GET": CONFIG_READERS, "PUT": ADMIN}

    @extend_schema(
        operation_id="policy_retrieve", responses={200: schemas.PolicyVersionOut, **error_responses(401, 403)}
    )
    def get(self, request):
        return Response(_policy_body(policy_get(tenant=self.tenant)))

    @extend_schema(
        operation_id="policy_publish",
        request=schemas.PolicyUpdate,
        responses={
            200: OpenApiResponse(schemas.PolicyVersionOut, description="The new version."),
            **error_responses(400, 401, 403),
        },
    )
    def put(self, request):
        body = dict(json_object(request.data))
        reason = body.pop("reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            message = "Must be a string of at most 500 characters."
            raise DomainValidationError(f"reason: {message}", fields={"reason": [message]})
        policy = policy_publish(tenant=self.tenant, document=body, user=_actor(self.api_key), reason=reason)
        return Response(_policy_body(policy))


class PolicyHistoryApi(TenantApi):
    """``GET /api/v1/policy/history``: every published version, newest first, with who and why."""

    permission_map = {"GET": KeyRoles.AUDIT}

    @extend_schema(
        operation_id="policy_history",
        parameters=[OpenApiParameter("limit", int, description="At most this many versions (default 100, max 1000).")],
        responses={200: schemas.PolicyHistoryOut, **error_responses(400, 401, 403)},
    )
    def get(self, request):
        raw_limit = request.query_params.get("limit", "100")
        if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not 1 <= int(raw_limit) <= 1000:
            raise DomainValidationError("limit: an integer from 1 to 1000", fields={"limit": ["1 to 1000."]})
        records = policy_history(tenant=self.tenant, limit=int(raw_limit))
        return Response({"results": [_history_body(record) for record in records]})


class ApplicationOverrideApi(TenantApi):
    """``PUT /api/v1/applications/{name}/override``: the stop button, effective from the next request."""

    permission_map = {"PUT": ADMIN}

    @extend_schema(
        operation_id="application_override_set",
        request=schemas.OverrideUpdate,
        responses={200: schemas.ApplicationOut, **error_responses(400, 401, 403)},
    )
    def put(self, request, name: str):
        if len(name) > 100 or not APPLICATION_NAME.fullmatch(name):
            message = f"An application name: {schemas.APPLICATION_NAME_RULE}."
            raise DomainValidationError(f"name: {message}", fields={"name": [message]})
        update = validate_body(schemas.OverrideUpdate, request.data)
        application = application_override_set(
            tenant=self.tenant, name=name, mode=update.mode, user=_actor(self.api_key), reason=update.reason
        )
        return Response(
            {
                "name": application.name,
                "override": application.override,
                "override_reason": application.override_reason,
                "rubric": application.rubric.name if application.rubric_id else None,
                "updated_at": application.updated_at,
            }
        )


def _rubric_body(rubric) -> dict:
    return {
        "name": rubric.name,
        "description": rubric.description,
        "criteria": rubric.criteria,
        "version": rubric.version,
        "updated_at": rubric.updated_at,
    }


class RubricCollectionApi(TenantApi):
    """``GET /api/v1/rubrics`` lists rubrics; ``POST`` creates one or publishes a new version of it (admin)."""

    permission_map = {"GET": CONFIG_READERS, "POST": ADMIN}

    @extend_schema(operation_id="rubrics_list", responses={200: schemas.RubricList, **error_responses(401, 403)})
    def get(self, request):
        return Response({"results": [_rubric_body(rubric) for rubric in rubric_list(tenant=self.tenant)]})

    @extend_schema(
        operation_id="rubrics_publish",
        request=schemas.RubricDocument,
        responses={
            201: OpenApiResponse(schemas.RubricOut, description="Created (version 1)."),
            200: OpenApiResponse(schemas.RubricOut, description="A new version of an existing rubric."),
            **error_responses(400, 401, 403),
        },
    )
    def post(self, request):
        rubric, created = rubric_publish(
            tenant=self.tenant, document=json_object(request.data), user=_actor(self.api_key)
        )
        return Response(_rubric_body(rubric), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RubricDetailApi(TenantApi):
    """``GET /api/v1/rubrics/{name}``: the current version of one rubric."""

    permission_map = {"GET": CONFIG_READERS}

    @extend_schema(
        operation_id="rubrics_retrieve", responses={200: schemas.RubricOut, **error_responses(401, 403, 404)}
    )
    def get(self, request, name: str):
        return Response(_rubric_body(rubric_get(tenant=self.tenant, name=name)))


# Judges ---------------------------------------------------------------------


def judge_body(judge) -> dict:
    return {
        "id": judge.pk,
        "name": judge.name,
        "kind": judge.kind,
        "description": judge.description,
        "applications": judge.applications,
        "tiers": judge.tiers,
        "params": judge.params,
        "api_key_set": bool(judge.api_key),
        "on_fail": judge.on_fail,
        "raise_to": judge.raise_to or None,
        "unsure_low": judge.unsure_low,
        "unsure_high": judge.unsure_high,
        "is_active": judge.is_active,
        "version": judge.version,
        "updated_at": judge.updated_at,
    }


def _judge_history_body(record) -> dict:
    user = record.history_user
    return {
        "version": record.version,
        "name": record.name,
        "kind": record.kind,
        "applications": record.applications,
        "tiers": record.tiers,
        "params": record.params,
        "on_fail": record.on_fail,
        "raise_to": record.raise_to or None,
        "unsure_low": record.unsure_low,
        "unsure_high": record.unsure_high,
        "is_active": record.is_active,
        "changed_at": record.history_date,
        "changed_by": user.get_username() if user else None,
        "reason": record.history_change_reason or "",
    }


class JudgeCollectionApi(TenantApi):
    """``GET /api/v1/judges`` lists the tenant's judges; ``POST`` creates one (admin)."""

    permission_map = {"GET": KeyRoles.AUDIT, "POST": ADMIN}

    @extend_schema(operation_id="judges_list", responses={200: schemas.JudgeList, **error_responses(401, 403)})
    def get(self, request):
        return Response({"results": [judge_body(judge) for judge in judge_list(tenant=self.tenant)]})

    @extend_schema(
        operation_id="judges_create",
        request=schemas.JudgeSpec,
        responses={201: schemas.JudgeOut, **error_responses(400, 401, 403, 409)},
    )
    def post(self, request):
        judge = judge_create(tenant=self.tenant, data=json_object(request.data), user=_actor(self.api_key))
        return Response(judge_body(judge), status=status.HTTP_201_CREATED)


class JudgeDetailApi(TenantApi):
    """``GET /api/v1/judges/{id}``; ``PUT`` replaces its configuration as a new version (admin).

    Judges are deactivated (``is_active: false``), not deleted: their verdicts stay.
    """

    permission_map = {"GET": KeyRoles.AUDIT, "PUT": ADMIN}

    @extend_schema(operation_id="judges_retrieve", responses={200: schemas.JudgeOut, **error_responses(401, 403, 404)})
    def get(self, request, judge_id: int):
        return Response(judge_body(judge_get(tenant=self.tenant, judge_id=judge_id)))

    @extend_schema(
        operation_id="judges_update",
        request=schemas.JudgeSpec,
        responses={200: schemas.JudgeOut, **error_responses(400, 401, 403, 404, 409)},
    )
    def put(self, request, judge_id: int):
        judge = judge_update(
            tenant=self.tenant, judge_id=judge_id, data=json_object(request.data), user=_actor(self.api_key)
        )
        return Response(judge_body(judge))


class JudgeHistoryApi(TenantApi):
    """``GET /api/v1/judges/{id}/history``: every version, newest first, with who and why (never the key)."""

    permission_map = {"GET": KeyRoles.AUDIT}

    @extend_schema(
        operation_id="judges_history", responses={200: schemas.JudgeHistoryOut, **error_responses(401, 403, 404)}
    )
    def get(self, request, judge_id: int):
        records = judge_history(tenant=self.tenant, judge_id=judge_id)
        return Response({"results": [_judge_history_body(record) for record in records]})
