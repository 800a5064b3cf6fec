"""REST endpoints for outputs: submit, read, list, end-user feedback. Thin: they validate,
call a service or selector, render."""

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from hitl.api import TenantApi, error_responses, json_object, validate_body
from hitl.errors import DomainValidationError, fields_message, pydantic_fields
from hitl.pagination import TimeCursorPagination
from reviews import schemas
from reviews.filters import OutputFilter
from reviews.models import Output
from reviews.selectors import output_get_for_tenant, output_judgements, output_list
from reviews.services import IngestResult, output_ingest, output_ingest_batch
from reviews.services.feedback import output_feedback_add
from tenants.models import KeyRoles

SUBMIT_ROLES = KeyRoles.SUBMITTERS
READ_ROLES = KeyRoles.EVERYONE


def _submission_or_error(data) -> schemas.OutputSubmission:
    """Validate one submission (pydantic errors propagate: the batch reports them per item)."""
    return schemas.OutputSubmission.model_validate(json_object(data))


def receipt(row: dict) -> dict:
    return {
        "id": row["id"],
        "external_id": row["external_id"],
        "application": row["application"],
        "status": row["status"],
        "risk_tier": row["risk_tier"] or None,
        "review_required": row["review_required"],
        "delivery": row["delivery"],
        "policy_version": row["policy_version"],
        "received_at": row["received_at"],
    }


def detail(output, judgements=()) -> dict:
    return {
        **receipt(output.__dict__),
        "input": output.input,
        "output": output.output,
        "trace": output.trace,
        "metadata": output.metadata,
        "model": output.model,
        "confidence": output.confidence,
        "decision_reason": output.decision_reason,
        "decision": output.decision or None,
        "final_output": output.final_output,
        "decided_by": output.decided_by.get_username() if output.decided_by_id else None,
        "decided_at": output.decided_at,
        "judged_at": output.judged_at,
        "judgements": [judgement_body(judgement) for judgement in judgements],
    }


def judgement_body(judgement) -> dict:
    return {
        "judge": judgement.judge.name,
        "judge_id": judgement.judge_id,
        "judge_version": judgement.judge_version,
        "kind": judgement.judge.kind,
        "result": judgement.result,
        "score": judgement.score,
        "unsure": judgement.unsure,
        "rationale": judgement.rationale,
        "latency_ms": judgement.latency_ms,
        "attempts": judgement.attempts,
        "prompt_tokens": judgement.prompt_tokens,
        "completion_tokens": judgement.completion_tokens,
        "cost": None if judgement.cost is None else float(judgement.cost),
        "model": judgement.model,
        "created_at": judgement.created_at,
    }


def summary(output) -> dict:
    return {
        **receipt(output.__dict__),
        "metadata": output.metadata,
        "model": output.model,
        "confidence": output.confidence,
    }


_CONFLICT_MESSAGE = "An output with this external_id was already submitted with a different body."


class OutputCollectionApi(TenantApi, GenericAPIView):
    """``POST /api/v1/outputs`` submits one output; ``GET`` lists them, newest first."""

    permission_map = {"GET": READ_ROLES, "POST": SUBMIT_ROLES}
    pagination_class = TimeCursorPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = OutputFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return Output.objects.none()
        return output_list(tenant=self.tenant)

    @extend_schema(
        operation_id="outputs_submit",
        request=schemas.OutputSubmission,
        responses={
            201: OpenApiResponse(schemas.OutputReceipt, description="Stored."),
            200: OpenApiResponse(schemas.OutputReceipt, description="A repeat: the record stored earlier."),
            **error_responses(400, 401, 403, 409),
        },
    )
    def post(self, request):
        submission = validate_body(schemas.OutputSubmission, request.data)
        result: IngestResult = output_ingest(tenant=self.tenant, submission=submission)
        if result.outcome == "conflict":
            body = {"code": "conflict", "message": _CONFLICT_MESSAGE, "fields": {"external_id": [_CONFLICT_MESSAGE]}}
            return Response(body, status=status.HTTP_409_CONFLICT)
        code = status.HTTP_201_CREATED if result.outcome == "created" else status.HTTP_200_OK
        return Response(receipt(result.receipt), status=code)

    @extend_schema(
        operation_id="outputs_list",
        filters=True,
        parameters=[
            OpenApiParameter("cursor", str, description="Opaque cursor from a page's next or previous link."),
            OpenApiParameter("page_size", int, description="Items per page, 1 to 500 (default 50)."),
        ],
        responses={200: schemas.OutputPage, **error_responses(400, 401, 403)},
    )
    def get(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response([summary(output) for output in page])


class _BatchEnvelope(BaseModel):
    # Only the envelope is checked here; each item is validated on its own so
    # that one bad item is reported without failing the rest.
    model_config = ConfigDict(extra="forbid", strict=True)
    items: list[Any] = Field(min_length=1, max_length=1000)


_OUTCOME_STATUS = {"created": 201, "existing": 200, "conflict": 409}


class OutputBatchApi(TenantApi):
    """``POST /api/v1/outputs/batch``: up to 1000 outputs, one transaction for the valid ones."""

    permission_map = {"POST": SUBMIT_ROLES}

    @extend_schema(
        operation_id="outputs_submit_batch",
        request=schemas.OutputBatchSubmission,
        responses={
            200: OpenApiResponse(
                schemas.OutputBatchResult,
                description="A result per item, in order. Invalid items are reported and not stored.",
            ),
            **error_responses(400, 401, 403),
        },
    )
    def post(self, request):
        envelope = validate_body(_BatchEnvelope, request.data)
        results: list[dict | None] = [None] * len(envelope.items)
        valid: list[tuple[int, schemas.OutputSubmission]] = []
        for index, item in enumerate(envelope.items):
            try:
                valid.append((index, _submission_or_error(item)))
            except ValidationError as error:
                results[index] = _invalid(index, pydantic_fields(error))
            except DomainValidationError as error:
                results[index] = _invalid(index, error.fields)
        ingested = output_ingest_batch(tenant=self.tenant, submissions=[submission for _, submission in valid])
        for (index, _), result in zip(valid, ingested, strict=True):
            item = {"index": index, "outcome": result.outcome, "status_code": _OUTCOME_STATUS[result.outcome]}
            if result.outcome == "conflict":
                item["error"] = {"code": "conflict", "message": _CONFLICT_MESSAGE}
            item["output"] = receipt(result.receipt)
            results[index] = item
        counts = {"created": 0, "existing": 0, "conflict": 0, "invalid": 0}
        for item in results:
            counts[item["outcome"]] += 1
        return Response(
            {
                "results": results,
                "created": counts["created"],
                "existing": counts["existing"],
                "conflicts": counts["conflict"],
                "invalid": counts["invalid"],
            }
        )


def _invalid(index: int, fields: dict[str, list[str]]) -> dict:
    return {
        "index": index,
        "outcome": "invalid",
        "status_code": 400,
        "error": {"code": "validation_error", "message": fields_message(fields), "fields": fields},
    }


class OutputDetailApi(TenantApi):
    """``GET /api/v1/outputs/{id}``: the output, its status and (once decided) the decision."""

    permission_map = {"GET": READ_ROLES}

    @extend_schema(
        operation_id="outputs_retrieve", responses={200: schemas.OutputDetail, **error_responses(401, 403, 404)}
    )
    def get(self, request, output_id):
        output = output_get_for_tenant(tenant=self.tenant, output_id=output_id)
        return Response(detail(output, output_judgements(tenant=self.tenant, output_id=output.pk)))


class OutputFeedbackApi(TenantApi):
    """``POST /api/v1/outputs/{id}/feedback``: an end user's thumbs up or down."""

    permission_map = {"POST": SUBMIT_ROLES}

    @extend_schema(
        operation_id="outputs_feedback",
        request=schemas.FeedbackSubmission,
        responses={201: schemas.FeedbackReceipt, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request, output_id):
        submission = validate_body(schemas.FeedbackSubmission, request.data)
        feedback, task_created = output_feedback_add(
            tenant=self.tenant, output_id=output_id, rating=submission.rating, comment=submission.comment
        )
        body = {
            "id": feedback.pk,
            "output_id": feedback.output_id,
            "rating": feedback.rating,
            "review_task_created": task_created,
        }
        return Response(body, status=status.HTTP_201_CREATED)
