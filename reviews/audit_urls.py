"""The auditor's pages, under /audit/ (read-only; auditors and admins of the current tenant)."""

from django.urls import path

from reviews import audit_pages

app_name = "audit"

urlpatterns = [
    path("", audit_pages.OutputSearchPage.as_view(), name="outputs"),
    path("outputs.csv", audit_pages.OutputSearchCsv.as_view(), name="outputs-csv"),
    path("outputs/<uuid:output_id>/", audit_pages.OutputStoryPage.as_view(), name="story"),
    path("config/", audit_pages.ConfigHistoryPage.as_view(), name="config"),
    path("config/policy/<int:version>/", audit_pages.PolicyVersionPage.as_view(), name="policy-version"),
    path("chain/", audit_pages.ChainPage.as_view(), name="chain"),
    path("chain/verify", audit_pages.VerifyAction.as_view(), name="verify"),
    path("chain/verifications/<int:verification_id>", audit_pages.VerificationPartial.as_view(), name="verification"),
    path("exports/", audit_pages.ExportsPage.as_view(), name="exports"),
    path("exports/<uuid:export_id>/row", audit_pages.ExportPartial.as_view(), name="export-row"),
    path("exports/<uuid:export_id>/bundle.zip", audit_pages.ExportDownload.as_view(), name="export-bundle"),
    path("exports/<uuid:export_id>/files/<str:name>", audit_pages.ExportDownload.as_view(), name="export-file"),
    path("verifier/auditchain.py", audit_pages.VerifierDownload.as_view(), name="verifier"),
]
