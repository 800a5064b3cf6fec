from django.urls import path, re_path

from policies.apis import (
    ApplicationOverrideApi,
    JudgeCollectionApi,
    JudgeDetailApi,
    JudgeHistoryApi,
    PolicyApi,
    PolicyHistoryApi,
    RubricCollectionApi,
    RubricDetailApi,
)

urlpatterns = [
    path("policy", PolicyApi.as_view(), name="policy"),
    path("policy/history", PolicyHistoryApi.as_view(), name="policy-history"),
    path("applications/<str:name>/override", ApplicationOverrideApi.as_view(), name="application-override"),
    path("rubrics", RubricCollectionApi.as_view(), name="rubrics"),
    # A rubric name as policies.schemas.Name allows; anything else is no rubric (a 404).
    re_path(r"^rubrics/(?P<name>[a-z0-9][a-z0-9_-]{0,49})$", RubricDetailApi.as_view(), name="rubric-detail"),
    path("judges", JudgeCollectionApi.as_view(), name="judges"),
    path("judges/<int:judge_id>", JudgeDetailApi.as_view(), name="judge-detail"),
    path("judges/<int:judge_id>/history", JudgeHistoryApi.as_view(), name="judge-history"),
]
