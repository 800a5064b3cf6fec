"""REST endpoints for outputs: submit, read, list, end-user feedback. Thin: they validate,
call a service or selector, render."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import ValidationError
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from hitl.api import TenantApi, error_responses, json_object, respond, validate_body
from hitl.api_errors import error_body
from hitl.errors import DomainValidationError, KeyUnconfirmed, fields_message, pydantic_fields
from hitl.pagination import TimeCursorPagination, cursor_parameters
from reviews import schemas
from reviews.filters import OutputFilter
from reviews.models import Output
from reviews.selectors import output_get_for_tenant, output_judgements, output_list
from reviews.services import IngestResult, output_ingest, output_ingest_batch
from reviews.services.feedback import output_feedback_add
from tenants.audit import Actor
from tenants.models import KeyRoles

SUBMIT_ROLES = KeyRoles.SUBMITTERS
READ_ROLES = KeyRoles.EVERYONE


def _submission_or_error(data) -> schemas.OutputSubmission:
    """Validate one submission (pydantic errors propagate: the batch reports them per item)."""
    return schemas.OutputSubmission.model_validate(json_object(data))


def receipt(row: dict) -> dict:
    # The documented model builds the body: about 5 us a receipt against 1 us for a hand-built
    # dict (measured), a small price on ingest for a body that cannot drift from the schema.
    return schemas.OutputReceipt.of(row).model_dump(mode="json")


_CONFLICT_MESSAGE = "An output with this external_id was already submitted with a different body."


class OutputCollectionApi(TenantApi, GenericAPIView):
    """``POST /api/v1/outputs`` submits one output; ``GET`` lists them, newest first."""

    permission_map = {"GET": READ_ROLES, "POST": SUBMIT_ROLES}
    # One output, one statement: the key may come from the process's cache, its check done
    # by the output's own insert (``key_guard``), one round trip where there were two.
    key_confirmed_by_write = frozenset({"POST"})
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
            **error_responses(400, 401, 403, 409, 422),
        },
    )
    def post(self, request):
        submission = validate_body(schemas.OutputSubmission, request.data)
        try:
            result: IngestResult = output_ingest(
                tenant=self.tenant, submission=submission, actor=Actor.of_key(self.api_key), key_guard=self.key_guard()
            )
        except KeyUnconfirmed:  # nothing was written: look the key up (a 401 if it no longer works), then store
            self.confirm_key()
            result = output_ingest(tenant=self.tenant, submission=submission, actor=Actor.of_key(self.api_key))
        else:
            self.key_confirmed()
        if result.outcome == "conflict":
            body = error_body("conflict", _CONFLICT_MESSAGE, {"external_id": [_CONFLICT_MESSAGE]})
            return Response(body, status=status.HTTP_409_CONFLICT)
        code = status.HTTP_201_CREATED if result.outcome == "created" else status.HTTP_200_OK
        return Response(receipt(result.receipt), status=code)

    @extend_schema(
        operation_id="outputs_list",
        filters=True,
        parameters=[
            *cursor_parameters(),
            OpenApiParameter(
                "application", {"type": "string", "minLength": 1}, description="Only outputs of this application."
            ),
        ],
        responses={200: schemas.OutputPage, **error_responses(400, 401, 403, 422)},
    )
    def get(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(
            [schemas.OutputSummary.of(output).model_dump(mode="json") for output in page]
        )


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
            **error_responses(400, 401, 403, 422),
        },
    )
    def post(self, request):
        # Only the envelope is checked here; each item is validated on its own so
        # that one bad item is reported without failing the rest.
        envelope = validate_body(schemas.OutputBatchSubmission, request.data)
        results: list[schemas.BatchItemResult | None] = [None] * len(envelope.items)
        valid: list[tuple[int, schemas.OutputSubmission]] = []
        for index, item in enumerate(envelope.items):
            try:
                valid.append((index, _submission_or_error(item)))
            except ValidationError as error:
                results[index] = _invalid(index, pydantic_fields(error))
            except DomainValidationError as error:
                results[index] = _invalid(index, error.fields)
        ingested = output_ingest_batch(
            tenant=self.tenant, submissions=[submission for _, submission in valid], actor=Actor.of_key(self.api_key)
        )
        for (index, _), result in zip(valid, ingested, strict=True):
            results[index] = schemas.BatchItemResult(
                index=index,
                outcome=result.outcome,
                status_code=_OUTCOME_STATUS[result.outcome],
                output=schemas.OutputReceipt.of(result.receipt),
                error=schemas.BatchItemError(code="conflict", message=_CONFLICT_MESSAGE)
                if result.outcome == "conflict"
                else None,
            )
        counts = {"created": 0, "existing": 0, "conflict": 0, "invalid": 0}
        for item in results:
            counts[item.outcome] += 1
        body = schemas.OutputBatchResult(
            results=results,
            created=counts["created"],
            existing=counts["existing"],
            conflicts=counts["conflict"],
            invalid=counts["invalid"],
        )
        return respond(body)


def _invalid(index: int, fields: dict[str, list[str]]) -> schemas.BatchItemResult:
    error = schemas.BatchItemError(code="validation_error", message=fields_message(fields), fields=fields)
    return schemas.BatchItemResult(index=index, outcome="invalid", status_code=400, error=error)


class OutputDetailApi(TenantApi):
    """``GET /api/v1/outputs/{id}``: the output, its status and (once decided) the decision."""

    permission_map = {"GET": READ_ROLES}

    @extend_schema(
        operation_id="outputs_retrieve", responses={200: schemas.OutputDetail, **error_responses(401, 403, 404)}
    )
    def get(self, request, output_id):
        output = output_get_for_tenant(tenant=self.tenant, output_id=output_id)
        return respond(schemas.OutputDetail.of(output, output_judgements(tenant=self.tenant, output_id=output.pk)))


class OutputFeedbackApi(TenantApi):
    """``POST /api/v1/outputs/{id}/feedback``: an end user's thumbs up or down."""

    permission_map = {"POST": SUBMIT_ROLES}

    @extend_schema(
        operation_id="outputs_feedback",
        request=schemas.FeedbackSubmission,
        responses={201: schemas.FeedbackReceipt, **error_responses(400, 401, 403, 404, 422)},
    )
    def post(self, request, output_id):
        submission = validate_body(schemas.FeedbackSubmission, request.data)
        feedback, task_created = output_feedback_add(
            tenant=self.tenant, output_id=output_id, rating=submission.rating, comment=submission.comment
        )
        body = schemas.FeedbackReceipt(
            id=feedback.pk, output_id=feedback.output_id, rating=feedback.rating, review_task_created=task_created
        )
        return respond(body, status=status.HTTP_201_CREATED)
