"""The quality layer's REST endpoints: golden sets, certifications, exams, a queue's certification rules.

Quality leads and admins manage; a reviewer's key reads its own certifications and exams
and starts its own exams. Thin views: validate, call one service or selector, serialize.
"""

import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import ValidationError
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.negotiation import BaseContentNegotiation

from hitl.api import TenantApi, error_responses, respond, validate_body
from hitl.api_errors import RequestTooLarge
from hitl.errors import (
    ConflictError,
    DomainValidationError,
    ForbiddenError,
    NotFoundError,
    pydantic_error,
    pydantic_fields,
)
from policies.selectors import judge_flags
from policies.services import judge_flag_clear
from quality import schemas, selectors
from quality.agreement import (
    judge_version_agreement,
    queue_agreement,
    reviewer_pair_agreement,
)
from quality.datasets import CONTENT_TYPE, DatasetFilter, dataset_file_name, dataset_lines
from quality.metrics import GROUP_BY, MAX_DAYS, metrics_report
from quality.models import CalibrationItem, CalibrationStatus
from quality.params import metrics_group_by, metrics_period
from quality.schemas import DatasetQuery
from quality.selectors import (
    calibration_criteria,
    calibration_participants,
    calibration_results,
    calibration_session_get,
    calibration_sessions,
    calibration_work,
)
from quality.services import (
    calibration_answer_submit,
    calibration_session_close,
    calibration_session_create,
    dataset_export_record,
    gold_item_promote,
    gold_item_remove,
    gold_items_import,
    golden_set_create,
    golden_set_export,
    judge_flag_settings,
)
from reviews.apis.audit import JsonErrorsOnly, period_parse
from reviews.models import Queue
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

QUALITY = KeyRoles.QUALITY
OWN_OR_QUALITY = KeyRoles.QUALITY | {ApiKeyRole.REVIEWER}
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


CALIBRATING = frozenset({ApiKeyRole.REVIEWER, ApiKeyRole.QUALITY_LEAD, ApiKeyRole.ADMIN})
DEFAULT_DAYS = 30

OPTIONAL_PERIOD = [
    OpenApiParameter(
        "from",
        {"type": "string", "format": "date-time"},
        description=f"Start (inclusive), RFC 3339 with an offset. Default: {DEFAULT_DAYS} days before `to`.",
    ),
    OpenApiParameter("to", {"type": "string", "format": "date-time"}, description="End (exclusive). Default: now."),
]


QUEUE_PARAMETER = OpenApiParameter(
    "queue", {"type": "string", "minLength": 1, "maxLength": 100}, description="Only reviews of this queue."
)


def _period(params):
    """``from`` and ``to``, each optional: the last 30 days until ``to`` (default now)."""
    now = timezone.now()
    given = {name: params[name] for name in ("from", "to") if params.get(name) is not None}
    if len(given) == 2:
        return period_parse(params)
    if "to" in given:
        end = period_parse({"from": "0001-01-01T00:00:00Z", "to": given["to"]})[1]
        try:
            return end - timedelta(days=DEFAULT_DAYS), end
        except OverflowError:  # the first days of year 1
            return datetime.min.replace(tzinfo=UTC), end
    if "from" in given:
        start = period_parse({"from": given["from"], "to": "9999-12-31T23:59:59.999999Z"})[0]
        return start, max(now, start)  # a start in the future: an empty period
    return now - timedelta(days=DEFAULT_DAYS), now


def _queue(tenant, params) -> Queue | None:
    name = params.get("queue")
    if name is None:
        return None
    if not name:
        raise DomainValidationError("queue: a queue's name", fields={"queue": ["A queue's name."]})
    queue = Queue.objects.for_tenant(tenant).filter(name=name).first()
    if queue is None:
        raise NotFoundError("queue: no such queue.")
    return queue


def _sees_everything(api_key) -> bool:
    return api_key.role in QUALITY


def _person_or_none(api_key):
    return api_key.user if api_key.user_id else None


def _session_for(api, session_id):
    """The session as the key may see it: quality keys any of the tenant's, others only when invited."""
    if _sees_everything(api.api_key):
        return calibration_session_get(tenant=api.tenant, session_id=session_id)
    person = _person_or_none(api.api_key)
    if person is None:
        raise NotFoundError("Calibration session not found.")
    return calibration_session_get(tenant=api.tenant, session_id=session_id, user=person)


def _session_out(tenant, session) -> schemas.CalibrationSessionOut:
    items = CalibrationItem.objects.for_tenant(tenant).filter(session=session).count()
    return schemas.CalibrationSessionOut.of(session, calibration_participants(tenant=tenant, session=session), items)


class CalibrationSessionCollectionApi(TenantApi):
    """``GET /api/v1/calibration/sessions``: sessions (a reviewer's: those they are invited to);
    ``POST``: a quality lead starts one."""

    permission_map = {"GET": CALIBRATING, "POST": QUALITY}

    @extend_schema(
        operation_id="calibration_sessions_list",
        responses={200: schemas.CalibrationSessionList, **error_responses(401, 403)},
    )
    def get(self, request):
        if _sees_everything(self.api_key):
            sessions = calibration_sessions(tenant=self.tenant)
        else:
            person = _person_or_none(self.api_key)
            sessions = calibration_sessions(tenant=self.tenant, user=person) if person else []
        return respond(schemas.CalibrationSessionList(results=[_session_out(self.tenant, s) for s in sessions]))

    @extend_schema(
        operation_id="calibration_sessions_create",
        request=schemas.CalibrationSessionIn,
        responses={201: schemas.CalibrationSessionOut, **error_responses(400, 401, 403, 404, 422)},
    )
    def post(self, request):
        data = validate_body(schemas.CalibrationSessionIn, request.data)
        session = calibration_session_create(
            tenant=self.tenant,
            user=_person_or_none(self.api_key),
            name=data.name,
            rubric_name=data.rubric,
            output_ids=[str(value) for value in data.outputs],
            participant_ids=list(data.participants),
        )
        return respond(_session_out(self.tenant, session), status=201)


class CalibrationSessionDetailApi(TenantApi):
    """``GET /api/v1/calibration/sessions/{id}``: the session, who is invited and how far each is."""

    permission_map = {"GET": CALIBRATING}

    @extend_schema(
        operation_id="calibration_sessions_get",
        responses={200: schemas.CalibrationSessionOut, **error_responses(401, 403, 404)},
    )
    def get(self, request, calibration_id: int):
        return respond(_session_out(self.tenant, _session_for(self, calibration_id)))


class CalibrationWorkApi(TenantApi):
    """``GET /api/v1/calibration/sessions/{id}/work``: the items to score, with your own answers only."""

    permission_map = {"GET": CALIBRATING}

    @extend_schema(
        operation_id="calibration_sessions_work",
        responses={200: schemas.CalibrationWork, **error_responses(401, 403, 404)},
    )
    def get(self, request, calibration_id: int):
        person = _person_or_none(self.api_key)
        if person is None:
            raise NotFoundError("Calibration session not found.")
        session = calibration_session_get(tenant=self.tenant, session_id=calibration_id, user=person)
        items = [
            schemas.CalibrationWorkItem(
                item=row["item"].pk,
                position=row["item"].position,
                output_id=row["output"].pk,
                external_id=row["output"].external_id,
                application=row["output"].application,
                input=row["output"].input,
                output=row["output"].output,
                answer=schemas.CalibrationAnswerOut(
                    item=row["item"].pk,
                    decision=row["answer"].decision,
                    scores=row["answer"].scores,
                    comment=row["answer"].comment,
                    updated_at=row["answer"].updated_at,
                )
                if row["answer"]
                else None,
            )
            for row in calibration_work(tenant=self.tenant, session=session, user=person)
        ]
        return respond(
            schemas.CalibrationWork(
                session=_session_out(self.tenant, session),
                criteria=calibration_criteria(tenant=self.tenant, session=session),
                items=items,
            )
        )


class CalibrationAnswerApi(TenantApi):
    """``POST /api/v1/calibration/sessions/{id}/answers``: your answer on one item, blind (again: replaces it)."""

    permission_map = {"POST": CALIBRATING}

    @extend_schema(
        operation_id="calibration_sessions_answer",
        request=schemas.CalibrationAnswerIn,
        responses={201: schemas.CalibrationAnswerOut, **error_responses(400, 401, 403, 404, 409, 422)},
    )
    def post(self, request, calibration_id: int):
        person = _person_or_none(self.api_key)
        if person is None:
            raise NotFoundError("Calibration session not found.")
        data = validate_body(schemas.CalibrationAnswerIn, request.data)
        answer = calibration_answer_submit(
            tenant=self.tenant,
            user=person,
            session_id=calibration_id,
            item_id=data.item,
            decision=data.decision,
            scores=data.scores,
            comment=data.comment,
        )
        return respond(
            schemas.CalibrationAnswerOut(
                item=answer.item_id,
                decision=answer.decision,
                scores=answer.scores,
                comment=answer.comment,
                updated_at=answer.updated_at,
            ),
            status=201,
        )


class CalibrationCloseApi(TenantApi):
    """``POST /api/v1/calibration/sessions/{id}/close``: answers freeze, results show to everyone invited."""

    permission_map = {"POST": QUALITY}

    @extend_schema(
        operation_id="calibration_sessions_close",
        request=None,
        responses={200: schemas.CalibrationSessionOut, **error_responses(401, 403, 404, 409)},
    )
    def post(self, request, calibration_id: int):
        calibration_session_get(tenant=self.tenant, session_id=calibration_id)
        session = calibration_session_close(
            tenant=self.tenant, user=_person_or_none(self.api_key), session_id=calibration_id
        )
        return respond(_session_out(self.tenant, session))


def results_out(tenant, results) -> schemas.CalibrationResults:
    return schemas.CalibrationResults(
        session=_session_out(tenant, results.session),
        participants=[person["username"] for person in results.participants],
        items=[
            schemas.CalibrationResultItem(
                item=row.item.pk,
                position=row.item.position,
                output_id=row.item.output_id,
                external_id=row.item.output.external_id,
                answers=[
                    schemas.CalibrationResultAnswer(
                        reviewer=answer.user.get_username(),
                        decision=answer.decision,
                        scores=answer.scores,
                        comment=answer.comment,
                    )
                    if answer is not None
                    else None
                    for answer in row.answers
                ],
                disagreements=row.disagreements,
                gold=row.gold,
            )
            for row in results.items
        ],
        agreement=[schemas.CriterionAgreementOut.model_validate(figure) for figure in results.agreement],
    )


class CalibrationResultsApi(TenantApi):
    """``GET /api/v1/calibration/sessions/{id}/results``: once closed, everyone's answers side by side
    (disagreements first), the gold answer where there is one, and the session's agreement."""

    permission_map = {"GET": CALIBRATING}

    @extend_schema(
        operation_id="calibration_sessions_results",
        responses={200: schemas.CalibrationResults, **error_responses(401, 403, 404, 409)},
    )
    def get(self, request, calibration_id: int):
        session = _session_for(self, calibration_id)
        if session.status != CalibrationStatus.CLOSED:
            raise ConflictError("The session is open: results show once it is closed.", code="session_open")
        return respond(results_out(self.tenant, calibration_results(tenant=self.tenant, session=session)))


class AgreementApi(TenantApi):
    """``GET /api/v1/agreement``: agreement per criterion over production overlap reviews of a
    period (reviews given in it), optionally of one queue; low ones flagged."""

    permission_map = {"GET": QUALITY}

    @extend_schema(
        operation_id="agreement_get",
        parameters=[*OPTIONAL_PERIOD, QUEUE_PARAMETER],
        responses={200: schemas.AgreementReportOut, **error_responses(400, 401, 403, 404, 422)},
    )
    def get(self, request):
        start, end = _period(request.query_params)
        queue = _queue(self.tenant, request.query_params)
        report = queue_agreement(tenant=self.tenant, start=start, end=end, queue_id=queue.pk if queue else None)
        return respond(
            schemas.AgreementReportOut(
                start=start,
                end=end,
                queue=queue.name if queue else None,
                threshold=report.threshold,
                min_units=report.min_units,
                criteria=[schemas.CriterionAgreementOut.model_validate(figure) for figure in report.criteria],
            )
        )


_KEY = re.compile(r"[a-z0-9_][a-z0-9_-]{0,49}", re.IGNORECASE)


class AgreementPairsApi(TenantApi):
    """``GET /api/v1/agreement/pairs``: Cohen's kappa of every pair of reviewers on the outputs both reviewed."""

    permission_map = {"GET": QUALITY}

    @extend_schema(
        operation_id="agreement_pairs",
        parameters=[
            *OPTIONAL_PERIOD,
            QUEUE_PARAMETER,
            OpenApiParameter(
                "criterion",
                {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_-]{0,49}$"},
                description="`decision` (default) or a rubric criterion's key.",
            ),
        ],
        responses={200: schemas.PairAgreementList, **error_responses(400, 401, 403, 404, 422)},
    )
    def get(self, request):
        start, end = _period(request.query_params)
        queue = _queue(self.tenant, request.query_params)
        criterion = request.query_params.get("criterion", "decision")
        if not _KEY.fullmatch(criterion):
            raise DomainValidationError("criterion: a criterion's key", fields={"criterion": ["A criterion's key."]})
        pairs = reviewer_pair_agreement(
            tenant=self.tenant, start=start, end=end, queue_id=queue.pk if queue else None, criterion=criterion
        )
        ids = {pair.reviewer_a for pair in pairs} | {pair.reviewer_b for pair in pairs}
        names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
        return respond(
            schemas.PairAgreementList(
                start=start,
                end=end,
                results=[
                    schemas.PairAgreementOut(
                        reviewer_a=names.get(pair.reviewer_a, str(pair.reviewer_a)),
                        reviewer_b=names.get(pair.reviewer_b, str(pair.reviewer_b)),
                        criterion=pair.criterion,
                        units=pair.units,
                        percent_agreement=pair.percent_agreement,
                        kappa=pair.kappa,
                        weights=pair.weights,
                    )
                    for pair in pairs
                ],
            )
        )


def judge_rows(tenant, start, end) -> list[schemas.JudgeVersionAgreementOut]:
    flags = {flag.judge_id: flag for flag in judge_flags(tenant=tenant, open_only=True)}
    rows = []
    for figure in judge_version_agreement(tenant=tenant, start=start, end=end):
        flag = flags.get(figure.judge)
        (pp, pf), (fp, ff) = figure.table
        rows.append(
            schemas.JudgeVersionAgreementOut(
                judge=figure.judge,
                judge_name=figure.judge_name,
                version=figure.version,
                compared=figure.compared,
                errors=figure.errors,
                both_pass=pp,
                judge_pass_human_fail=pf,
                judge_fail_human_pass=fp,
                both_fail=ff,
                percent_agreement=figure.percent_agreement,
                kappa=figure.kappa,
                flag=schemas.JudgeFlagOut.of(flag) if flag and flag.judge_version == figure.version else None,
            )
        )
    return rows


class JudgeAgreementListApi(TenantApi):
    """``GET /api/v1/agreement/judges``: every judge version against people's decisions in the
    period, with the open flags."""

    permission_map = {"GET": QUALITY}

    @extend_schema(
        operation_id="agreement_judges",
        parameters=OPTIONAL_PERIOD,
        responses={200: schemas.JudgeAgreementList, **error_responses(400, 401, 403, 422)},
    )
    def get(self, request):
        start, end = _period(request.query_params)
        return respond(
            schemas.JudgeAgreementList(
                start=start,
                end=end,
                threshold=judge_flag_settings()["threshold"],
                results=judge_rows(self.tenant, start, end),
            )
        )


class JudgeFlagClearApi(TenantApi):
    """``POST /api/v1/judges/{id}/flag/clear``: a person looked at a flagged judge; boosted sampling stops."""

    permission_map = {"POST": QUALITY}

    @extend_schema(
        operation_id="judges_flag_clear",
        request=schemas.JudgeFlagClearIn,
        responses={200: schemas.JudgeFlagOut, **error_responses(400, 401, 403, 404, 409, 422)},
    )
    def post(self, request, judge_id: int):
        data = validate_body(schemas.JudgeFlagClearIn, request.data if request.data else {})
        flag = judge_flag_clear(
            tenant=self.tenant, judge_id=judge_id, user=_person_or_none(self.api_key), note=data.note
        )
        return respond(schemas.JudgeFlagOut.of(flag))


# A date, or a date-time on a whole hour (an offset that moves it off the hour is a 422).
PERIOD_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:00:00(Z|[+-][0-9]{2}:[0-9]{2}))?$"

# Quality leads and admins; auditors too: the figures (SLA compliance, what was stopped before
# delivery) belong in a compliance review, and they read every review's story anyway.
METRICS_READERS = KeyRoles.QUALITY | {ApiKeyRole.AUDITOR}


class MetricsApi(TenantApi):
    """``GET /api/v1/metrics?from=&to=&group_by=``: the metrics of seed 001 Table 1 for a period,
    read from the rollups (never from the outputs), in total and per group."""

    permission_map = {"GET": METRICS_READERS}

    @extend_schema(
        operation_id="metrics",
        parameters=[
            OpenApiParameter(
                "from",
                {"type": "string", "pattern": PERIOD_PATTERN},
                required=True,
                description="Start (inclusive): a date (midnight UTC) or an RFC 3339 date-time on a whole hour.",
            ),
            OpenApiParameter(
                "to",
                {"type": "string", "pattern": PERIOD_PATTERN},
                required=True,
                description=f"End (exclusive), as `from`, later than it and at most {MAX_DAYS} days after.",
            ),
            OpenApiParameter(
                "group_by",
                {"type": "string", "pattern": rf"^({'|'.join(GROUP_BY)})(,({'|'.join(GROUP_BY)}))?$"},
                description="One or two dimensions, comma-separated: "
                + ", ".join(f"`{name}`" for name in GROUP_BY)
                + ". Outputs group by tier, application, model, prompt_version (metadata), category (metadata) "
                "and day; reviews by reviewer, queue, category and day; judges by judge and day.",
            ),
        ],
        responses={200: schemas.MetricsReport, **error_responses(400, 401, 403, 422)},
    )
    def get(self, request):
        start, end = metrics_period(request.query_params)
        group_by = metrics_group_by(request.query_params.get("group_by"))
        report = metrics_report(tenant=self.tenant, start=start, end=end, group_by=group_by)
        return respond(schemas.MetricsReport.of(report))


class _JsonErrorsOnly(BaseContentNegotiation):
    """Errors are JSON whatever the client accepts; the dataset itself is streamed apart."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def dataset_filter_of(query: DatasetQuery) -> DatasetFilter:
    return DatasetFilter(
        format=query.format,
        as_of=timezone.now(),
        start=query.start,
        end=query.end,
        applications=tuple(query.application),
        tiers=tuple(query.tier),
        decisions=tuple(query.decision) or ("corrected",),
    )


def dataset_query_parse(params) -> DatasetQuery:
    """The query string as a :class:`DatasetQuery` (lists from repeated parameters); errors name the parameter."""
    data = {}
    for name in ("format", "from", "to"):
        if name in params:
            data[name] = params.get(name)
    for name in ("application", "tier", "decision"):
        values = [value for value in params.getlist(name) for value in value.split(",") if value]
        if values:
            data[name] = values
    unknown = sorted(set(params) - {"format", "from", "to", "application", "tier", "decision"})
    for name in unknown:
        data[name] = params.get(name)  # refused by the model, naming it
    try:
        return DatasetQuery.model_validate(data)
    except ValidationError as error:  # the API's 400, naming each parameter
        raise pydantic_error(error, pydantic_fields(error)) from error


class FineTuningDatasetApi(TenantApi):
    """``GET /api/v1/datasets/fine-tuning``: reviewed outputs as a fine-tuning dataset, streamed.

    Quality leads and admins. The export is recorded in the audit trail (who, which filter, how
    many lines) before the first line is sent.
    """

    permission_map = {"GET": KeyRoles.QUALITY}
    content_negotiation_class = _JsonErrorsOnly

    @extend_schema(
        operation_id="datasets_fine_tuning",
        parameters=[
            OpenApiParameter(
                "format",
                {"type": "string", "enum": ["chat", "preference"], "default": "chat"},
                description='`chat`: OpenAI\'s supervised fine-tuning lines, `{"messages": [...]}` with the corrected '
                "(or approved) output as the last assistant turn; `preference`: OpenAI's preference (DPO) lines, "
                '`{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}`.',
            ),
            OpenApiParameter(
                "from", {"type": "string", "format": "date-time"}, description="Received at or after (RFC 3339)."
            ),
            OpenApiParameter("to", {"type": "string", "format": "date-time"}, description="Received before."),
            OpenApiParameter(
                "application",
                {"type": "array", "items": {"type": "string"}},
                description="Only these applications (repeat the parameter or separate by commas).",
            ),
            OpenApiParameter(
                "tier", {"type": "array", "items": {"type": "string"}}, description="Only these risk tiers."
            ),
            OpenApiParameter(
                "decision",
                {"type": "array", "items": {"type": "string", "enum": ["approved", "corrected"]}},
                description="Final decisions to include (chat: default corrected; preference: corrected only).",
            ),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="JSON Lines, streamed: one training example per line."
            ),
            **error_responses(400, 401, 403, 422),
        },
    )
    def get(self, request):
        dataset = dataset_filter_of(dataset_query_parse(request.query_params))
        dataset_export_record(tenant=self.tenant, dataset=dataset, actor=Actor.of_key(self.api_key))
        response = StreamingHttpResponse(dataset_lines(tenant=self.tenant, dataset=dataset), content_type=CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{dataset_file_name(dataset)}"'
        response["Cache-Control"] = "no-store"
        return response
