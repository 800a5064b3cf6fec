"""Agreement statistics over production overlap reviews, reviewer pairs and judges (issue 13, points 4 and 7)."""

import re

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema

from hitl.api import TenantApi, error_responses, respond, validate_body
from hitl.errors import (
    DomainValidationError,
)
from policies.selectors import judge_flags
from policies.services import judge_flag_clear
from quality import schemas
from quality.agreement import (
    judge_version_agreement,
    queue_agreement,
    reviewer_pair_agreement,
)
from quality.apis.common import (
    OPTIONAL_PERIOD,
    QUALITY,
    QUEUE_PARAMETER,
    optional_period,
    person_or_none,
    queue_param,
)
from quality.services import (
    judge_flag_settings,
)


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
        start, end = optional_period(request.query_params)
        queue = queue_param(self.tenant, request.query_params)
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
        start, end = optional_period(request.query_params)
        queue = queue_param(self.tenant, request.query_params)
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
        start, end = optional_period(request.query_params)
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
            tenant=self.tenant, judge_id=judge_id, user=person_or_none(self.api_key), note=data.note
        )
        return respond(schemas.JudgeFlagOut.of(flag))
