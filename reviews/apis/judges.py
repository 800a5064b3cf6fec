"""Judge quality: how a judge's verdicts compare with people's decisions."""

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema

from hitl.api import TenantApi, error_responses, respond
from hitl.errors import DomainValidationError
from policies.schemas import JudgeAgreementOut
from reviews.selectors import judge_agreement
from tenants.models import KeyRoles


class JudgeAgreementApi(TenantApi):
    """``GET /api/v1/judges/{id}/agreement``: the judge against people's final decisions
    (counts, agreement rate, Cohen's kappa), optionally for one judge version."""

    permission_map = {"GET": KeyRoles.AUDIT}

    @extend_schema(
        operation_id="judges_agreement",
        parameters=[
            OpenApiParameter(
                "version",
                {"type": "integer", "minimum": 1, "maximum": 999_999_999},
                description="Only verdicts given by this judge version.",
            )
        ],
        responses={200: JudgeAgreementOut, **error_responses(400, 401, 403, 404)},
    )
    def get(self, request, judge_id: int):
        raw = request.query_params.get("version")
        if raw is not None and not re.fullmatch(r"[1-9][0-9]{0,8}", raw):
            raise DomainValidationError("version: a positive integer", fields={"version": ["A positive integer."]})
        agreement = judge_agreement(tenant=self.tenant, judge_id=judge_id, version=int(raw) if raw else None)
        return respond(JudgeAgreementOut.model_validate(agreement))
