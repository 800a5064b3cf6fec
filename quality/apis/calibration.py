"""Calibration sessions (issue 13, point 3): a quality lead runs one, invited reviewers score
blind, then everyone invited sees the results side by side."""

from drf_spectacular.utils import extend_schema

from hitl.api import TenantApi, error_responses, respond, validate_body
from hitl.errors import (
    ConflictError,
    NotFoundError,
)
from quality import schemas
from quality.apis.common import QUALITY, person_or_none, sees_everything
from quality.models import CalibrationItem, CalibrationStatus
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
)
from tenants.models import ApiKeyRole

CALIBRATING = frozenset({ApiKeyRole.REVIEWER, ApiKeyRole.QUALITY_LEAD, ApiKeyRole.ADMIN})


def _session_for(api, session_id):
    """The session as the key may see it: quality keys any of the tenant's, others only when invited."""
    if sees_everything(api.api_key):
        return calibration_session_get(tenant=api.tenant, session_id=session_id)
    person = person_or_none(api.api_key)
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
        if sees_everything(self.api_key):
            sessions = calibration_sessions(tenant=self.tenant)
        else:
            person = person_or_none(self.api_key)
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
            user=person_or_none(self.api_key),
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
        person = person_or_none(self.api_key)
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
        person = person_or_none(self.api_key)
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
            tenant=self.tenant, user=person_or_none(self.api_key), session_id=calibration_id
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
