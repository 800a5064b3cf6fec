"""Golden sets, certifications, exams and a queue's certification rules (issue 13, points 1 and 2).

Quality leads and admins manage; a reviewer's key reads its own certifications and exams
and starts its own exams. Thin views: validate, call one service or selector, serialize.
"""

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType

from hitl.api import TenantApi, error_responses, respond, validate_body
from hitl.api_errors import RequestTooLarge
from hitl.errors import (
    DomainValidationError,
    ForbiddenError,
)
from quality import schemas, selectors
from quality.apis.common import OWN_OR_QUALITY, QUALITY
from quality.services import (
    gold_item_promote,
    gold_item_remove,
    gold_items_import,
    golden_set_create,
    golden_set_export,
)
from reviews.apis.audit import JsonErrorsOnly
from reviews.services.gold import (
    QUEUE_CERTIFICATION_RULES,
    certification_reinstate,
    certification_revoke,
    exam_start,
    queue_certification_rules_set,
    queue_recertification_require,
)
from tenants.audit import Actor
from tenants.models import ApiKeyRole, KeyRoles

JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


def golden_set_out(golden_set) -> schemas.GoldenSetOut:
    return schemas.GoldenSetOut(
        id=golden_set.pk,
        name=golden_set.name,
        description=golden_set.description,
        queue=golden_set.queue.name if golden_set.queue_id else None,
        skill=golden_set.skill or None,
        version=golden_set.version,
        items=golden_set.current_items,
        created_at=golden_set.created_at,
        updated_at=golden_set.updated_at,
    )


def gold_item_out(item) -> schemas.GoldItemOut:
    return schemas.GoldItemOut(
        id=item.pk,
        added_in=item.added_in,
        removed_in=item.removed_in,
        source_output=item.source_output_id,
        application=item.application,
        input=item.input,
        output=item.output,
        trace=item.trace,
        metadata=item.metadata,
        model=item.model,
        confidence=item.confidence,
        rubric=item.rubric.name if item.rubric_id else None,
        rubric_version=item.rubric_version,
        expected_decision=item.expected_decision,
        expected_scores=item.expected_scores,
        expected_output=item.expected_output,
        note=item.note,
        created_at=item.created_at,
    )


class QualityApi(TenantApi):
    def actor(self) -> Actor:
        return Actor.of_key(self.api_key)

    def own_person(self):
        """A reviewer's key sees only its person's rows (None: a quality lead's or admin's sees all)."""
        if self.api_key.role != ApiKeyRole.REVIEWER:
            return None
        if not self.api_key.user_id:
            raise ForbiddenError("This key acts for no person.")
        return self.api_key.user


class GoldenSetCollectionApi(QualityApi):
    """``/api/v1/golden-sets``: list them, or make one for a queue or a skill."""

    permission_map = {"GET": QUALITY, "POST": QUALITY}

    @extend_schema(operation_id="golden_sets_list", responses={200: schemas.GoldenSetList, **error_responses(401, 403)})
    def get(self, request):
        return respond(
            schemas.GoldenSetList(results=[golden_set_out(row) for row in selectors.golden_sets(tenant=self.tenant)])
        )

    @extend_schema(
        operation_id="golden_sets_create",
        request=schemas.GoldenSetIn,
        responses={201: schemas.GoldenSetOut, **error_responses(400, 401, 403, 409, 422)},
    )
    def post(self, request):
        body = validate_body(schemas.GoldenSetIn, request.data)
        golden_set = golden_set_create(
            tenant=self.tenant,
            name=body.name,
            description=body.description,
            queue=body.queue,
            skill=body.skill,
            actor=self.actor(),
        )
        return respond(
            golden_set_out(selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set.pk)), status=201
        )


class GoldenSetDetailApi(QualityApi):
    permission_map = {"GET": QUALITY}

    @extend_schema(
        operation_id="golden_sets_read", responses={200: schemas.GoldenSetOut, **error_responses(401, 403, 404)}
    )
    def get(self, request, golden_set_id):
        return respond(golden_set_out(selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)))


MAX_VERSION = 999_999_999
VERSION_PARAMETER = OpenApiParameter(
    "version",
    {"type": "integer", "minimum": 0, "maximum": MAX_VERSION},
    description="A version of the set (default: the current one; past the current: the current).",
)


def _version(request) -> int | None:
    raw = request.query_params.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > MAX_VERSION:
        raise DomainValidationError("version: a whole number", fields={"version": ["A whole number from 0."]})
    return int(raw)


class GoldItemCollectionApi(QualityApi):
    """``/api/v1/golden-sets/{id}/items``: the items of a version; POST promotes a reviewed output."""

    permission_map = {"GET": QUALITY, "POST": QUALITY}

    @extend_schema(
        operation_id="golden_set_items_list",
        parameters=[VERSION_PARAMETER],
        responses={200: schemas.GoldItemList, **error_responses(400, 401, 403, 404, 422)},
    )
    def get(self, request, golden_set_id):
        golden_set = selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)
        version = _version(request)
        version = golden_set.version if version is None else min(version, golden_set.version)
        items = selectors.gold_items(tenant=self.tenant, golden_set=golden_set, version=version)
        return respond(schemas.GoldItemList(version=version, results=[gold_item_out(item) for item in items]))

    @extend_schema(
        operation_id="golden_set_items_promote",
        request=schemas.PromoteIn,
        responses={201: schemas.GoldItemOut, **error_responses(400, 401, 403, 404, 422)},
    )
    def post(self, request, golden_set_id):
        body = validate_body(schemas.PromoteIn, request.data)
        selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)
        item = gold_item_promote(
            tenant=self.tenant,
            golden_set_id=golden_set_id,
            output_id=body.output_id,
            expected_decision=body.expected_decision,
            expected_scores=body.expected_scores,
            expected_output=body.expected_output,
            note=body.note,
            actor=self.actor(),
        )
        return respond(gold_item_out(item), status=201)


class GoldItemDetailApi(QualityApi):
    """``DELETE /api/v1/golden-sets/{id}/items/{item}``: the item leaves the set in a new version."""

    permission_map = {"DELETE": QUALITY}

    @extend_schema(
        operation_id="golden_set_items_remove", responses={200: schemas.GoldenSetOut, **error_responses(401, 403, 404)}
    )
    def delete(self, request, golden_set_id, item_id):
        selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)
        gold_item_remove(tenant=self.tenant, golden_set_id=golden_set_id, item_id=item_id, actor=self.actor())
        return respond(golden_set_out(selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)))


def _jsonl_body(request) -> bytes:
    media = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if media not in JSONL_TYPES:
        raise UnsupportedMediaType(media or "(none)", detail="Send application/x-ndjson: one JSON object a line.")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(limit)
    raw = request._request.read(limit + 1)
    if len(raw) > limit:
        raise RequestTooLarge(limit)
    return raw


class GoldImportApi(QualityApi):
    """``POST /api/v1/golden-sets/{id}/import``: JSON Lines, every line valid or nothing imported."""

    permission_map = {"POST": QUALITY}

    @extend_schema(
        operation_id="golden_set_import",
        description="One `GoldItemLine` object a line (`application/x-ndjson`). Every line is checked (its "
        "expected scores against the rubric version); one bad line and nothing is stored, the error naming "
        "each bad line (`line 3: expected_decision`). The import is one new version of the set.",
        request={"application/x-ndjson": OpenApiTypes.STR},
        responses={201: schemas.GoldImportResult, **error_responses(400, 401, 403, 404, 415, 422)},
    )
    def post(self, request, golden_set_id):
        selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)
        golden_set, count = gold_items_import(
            tenant=self.tenant, golden_set_id=golden_set_id, body=_jsonl_body(request), actor=self.actor()
        )
        return respond(
            schemas.GoldImportResult(golden_set=golden_set.pk, version=golden_set.version, imported=count), status=201
        )


class GoldExportApi(QualityApi):
    """``GET /api/v1/golden-sets/{id}/export?version=``: the items as JSON Lines, streamed, audited."""

    permission_map = {"GET": QUALITY}
    content_negotiation_class = JsonErrorsOnly

    @extend_schema(
        operation_id="golden_set_export",
        parameters=[VERSION_PARAMETER],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="One item a line: what an import reads, with id, version and origin."
            ),
            **error_responses(400, 401, 403, 404, 422),
        },
    )
    def get(self, request, golden_set_id):
        golden_set = selectors.golden_set_get(tenant=self.tenant, golden_set_id=golden_set_id)
        version = _version(request)
        chunks = golden_set_export(tenant=self.tenant, golden_set_id=golden_set.pk, version=version, actor=self.actor())
        response = StreamingHttpResponse(chunks, content_type="application/x-ndjson")
        shown = golden_set.version if version is None else version
        response["Content-Disposition"] = f'attachment; filename="golden-set-{golden_set.pk}-v{shown}.jsonl"'
        response["Cache-Control"] = "no-store"
        return response


class CertificationCollectionApi(QualityApi):
    """``GET /api/v1/certifications``: who holds what, suspended first (a reviewer's key: its own)."""

    permission_map = {"GET": OWN_OR_QUALITY}

    @extend_schema(
        operation_id="certifications_list", responses={200: schemas.CertificationList, **error_responses(401, 403)}
    )
    def get(self, request):
        rows = selectors.certifications(tenant=self.tenant, user=self.own_person())
        return respond(
            schemas.CertificationList(
                results=[schemas.CertificationOut(**selectors.certification_view(row)) for row in rows]
            )
        )


class CertificationReinstateApi(QualityApi):
    """``POST /api/v1/certifications/{id}/reinstate``: back to active, once the person passed a new exam."""

    permission_map = {"POST": QUALITY}

    @extend_schema(
        operation_id="certifications_reinstate",
        request=schemas.CertificationChangeIn,
        responses={200: schemas.CertificationOut, **error_responses(400, 401, 403, 404, 409, 422)},
    )
    def post(self, request, certification_id):
        body = validate_body(schemas.CertificationChangeIn, request.data)
        selectors.certification_get(tenant=self.tenant, certification_id=certification_id)
        certification = certification_reinstate(
            tenant=self.tenant, certification_id=certification_id, actor=self.actor(), reason=body.reason
        )
        return respond(schemas.CertificationOut(**selectors.certification_view(certification)))


class CertificationRevokeApi(QualityApi):
    permission_map = {"POST": QUALITY}

    @extend_schema(
        operation_id="certifications_revoke",
        request=schemas.CertificationChangeIn,
        responses={200: schemas.CertificationOut, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request, certification_id):
        body = validate_body(schemas.CertificationChangeIn, request.data)
        selectors.certification_get(tenant=self.tenant, certification_id=certification_id)
        certification = certification_revoke(
            tenant=self.tenant, certification_id=certification_id, actor=self.actor(), reason=body.reason or "revoked"
        )
        return respond(schemas.CertificationOut(**selectors.certification_view(certification)))


class ExamCollectionApi(QualityApi):
    """``/api/v1/exams``: exam results (a reviewer's key: its own); POST starts your exam for a queue."""

    permission_map = {"GET": OWN_OR_QUALITY, "POST": KeyRoles.REVIEWERS}

    @extend_schema(operation_id="exams_list", responses={200: schemas.ExamList, **error_responses(401, 403)})
    def get(self, request):
        rows = selectors.exams(tenant=self.tenant, user=self.own_person())
        return respond(schemas.ExamList(results=[schemas.ExamOut(**selectors.exam_view(row)) for row in rows]))

    @extend_schema(
        operation_id="exams_start",
        request=schemas.ExamStartIn,
        responses={201: schemas.ExamOut, **error_responses(400, 401, 403, 404, 409, 422)},
    )
    def post(self, request):
        body = validate_body(schemas.ExamStartIn, request.data)
        if not self.api_key.user_id:
            raise ForbiddenError("This key acts for no person; an exam is taken with one's own key.")
        queue = selectors.queue_by_name(tenant=self.tenant, name=body.queue)
        exam = exam_start(tenant=self.tenant, user=self.api_key.user, queue_id=queue.pk)
        return respond(schemas.ExamOut(**selectors.exam_view(exam)), status=201)


def _rules_out(queue) -> schemas.QueueCertificationOut:
    return schemas.QueueCertificationOut(
        queue=queue.name, **{field: getattr(queue, field) for field in QUEUE_CERTIFICATION_RULES}
    )


class QueueCertificationApi(QualityApi):
    """``/api/v1/queues/{name}/certification``: whether the queue requires certification, its exam and live gold."""

    permission_map = {"GET": KeyRoles.CONFIG_READERS, "PUT": QUALITY}

    @extend_schema(
        operation_id="queue_certification_read",
        responses={200: schemas.QueueCertificationOut, **error_responses(401, 403, 404)},
    )
    def get(self, request, queue_name):
        return respond(_rules_out(selectors.queue_by_name(tenant=self.tenant, name=queue_name)))

    @extend_schema(
        operation_id="queue_certification_update",
        request=schemas.QueueCertificationRules,
        responses={200: schemas.QueueCertificationOut, **error_responses(400, 401, 403, 404)},
    )
    def put(self, request, queue_name):
        queue = selectors.queue_by_name(tenant=self.tenant, name=queue_name)
        rules = validate_body(schemas.QueueCertificationRules, request.data)
        queue = queue_certification_rules_set(
            tenant=self.tenant, queue_id=queue.pk, rules=rules.model_dump(), actor=self.actor()
        )
        return respond(_rules_out(queue))


class QueueRecertificationApi(QualityApi):
    """``POST /api/v1/queues/{name}/recertification``: every active certification expires; all retake the exam."""

    permission_map = {"POST": QUALITY}

    @extend_schema(
        operation_id="queue_recertification",
        request=schemas.RecertificationIn,
        responses={200: schemas.RecertificationOut, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request, queue_name):
        queue = selectors.queue_by_name(tenant=self.tenant, name=queue_name)
        body = validate_body(schemas.RecertificationIn, request.data)
        expired = queue_recertification_require(
            tenant=self.tenant, queue_id=queue.pk, actor=self.actor(), reason=body.reason
        )
        return respond(schemas.RecertificationOut(queue=queue.name, expired=expired), status=status.HTTP_200_OK)
