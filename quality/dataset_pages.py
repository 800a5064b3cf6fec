"""``/quality/datasets/``: the quality lead picks reviewed outputs and downloads them as a fine-tuning dataset."""

from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from quality.datasets import CONTENT_TYPE, DatasetFilter, dataset_count, dataset_file_name, dataset_lines
from quality.pages import QualityPage
from quality.services import dataset_export_record
from tenants.audit import Actor

FORMAT_CHOICES = [
    ("chat", "Chat messages: the corrected output as the assistant's answer (supervised fine-tuning)"),
    ("preference", "Preference pairs: the correction preferred over the original (DPO)"),
]
DECISION_CHOICES = [("corrected", "Corrected by a person"), ("approved", "Approved as it was")]


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


class DatasetForm(forms.Form):
    """The dataset's filters; dates are whole days in UTC (``to`` included)."""

    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="chat", widget=forms.RadioSelect)
    received_from = forms.DateField(
        label="Received from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    received_to = forms.DateField(label="Received to", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    application = forms.CharField(
        label="Applications", required=False, max_length=2000, help_text="Empty for all; separate several by commas."
    )
    tier = forms.CharField(
        label="Risk tiers", required=False, max_length=1000, help_text="Empty for all; separate several by commas."
    )
    decision = forms.MultipleChoiceField(
        label="Decisions",
        choices=DECISION_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Chat: corrected when none is ticked. Preference pairs take corrected outputs only.",
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("received_from"), cleaned.get("received_to")
        if start and end and end < start:
            self.add_error("received_to", "Must not be before the start.")
        if cleaned.get("format") == "preference" and "approved" in (cleaned.get("decision") or []):
            self.add_error("decision", "Preference pairs are made of corrected outputs only.")
        return cleaned

    def dataset(self) -> DatasetFilter:
        data = self.cleaned_data
        start, end = data["received_from"], data["received_to"]
        return DatasetFilter(
            format=data["format"],
            as_of=timezone.now(),
            start=datetime.combine(start, time(), tzinfo=UTC) if start else None,
            end=datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC) if end else None,
            applications=_names(data["application"]),
            tiers=_names(data["tier"]),
            decisions=tuple(data["decision"]) or ("corrected",),
        )


class DatasetsPage(QualityPage):
    """The filters, how many lines they give, and the download button."""

    quality_section = "datasets"
    template_name = "quality/datasets.html"

    def form(self) -> DatasetForm:
        return DatasetForm(self.request.GET or None, initial={"format": "chat"})

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = kwargs.get("form") or self.form()
        lines = download_url = None
        if form.is_bound and form.is_valid():
            lines = dataset_count(tenant=self.tenant, dataset=form.dataset())
            download_url = f"{reverse('quality:datasets-download')}?{urlencode(self.request.GET, doseq=True)}"
        context.update(form=form, lines=lines, download_url=download_url)
        return context


class DatasetDownload(DatasetsPage):
    """``/quality/datasets/download``: the dataset streamed as JSON Lines, recorded in the audit trail."""

    def get(self, request, *args, **kwargs):
        form = DatasetForm(request.GET)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        dataset = form.dataset()
        dataset_export_record(
            tenant=self.tenant, dataset=dataset, actor=Actor.of_person(self.person, self.membership.role)
        )
        response = StreamingHttpResponse(dataset_lines(tenant=self.tenant, dataset=dataset), content_type=CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{dataset_file_name(dataset)}"'
        response["Cache-Control"] = "no-store"
        return response
