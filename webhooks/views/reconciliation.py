"""The reconciliation page and its CSV: where each webhook's events of each day are now."""

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from environments.views.decorators import environment_page
from portal.spreadsheets import csv_lines

from .. import reconciliation
from ..forms import ReconciliationForm


def _form(request, environment) -> ReconciliationForm:
    return ReconciliationForm(request.GET, environment=environment, today=timezone.localdate())


@environment_page
def reconciliation_page(request, environment):
    form = _form(request, environment)
    report = None
    if form.is_valid():
        data = form.cleaned_data
        report = reconciliation.reconcile(environment, data["since"], data["until"], data["webhook"])
    return render(
        request,
        "webhooks/reconciliation.html",
        {
            "section": "deliveries",
            "title": "Reconciliation",
            "form": form,
            "report": report,
        },
    )


@environment_page
def reconciliation_csv(request, environment):
    form = _form(request, environment)
    if not form.is_valid():
        return render(
            request, "webhooks/reconciliation.html", {"section": "deliveries", "form": form, "report": None}, status=400
        )
    data = form.cleaned_data
    report = reconciliation.reconcile(environment, data["since"], data["until"], data["webhook"])
    lines = csv_lines(reconciliation.CSV_HEADER, reconciliation.csv_rows(report))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = f"reconciliation-{environment.slug}-{data['since']}-{data['until']}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
