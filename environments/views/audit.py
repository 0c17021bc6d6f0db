"""The Audit log page and its CSV export."""

from django.conf import settings
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from ..access import audit_environments, is_admin
from ..audit import filter_audit, iter_csv
from ..forms import AuditFilterForm
from ..models import AuditEvent
from .decorators import audit_page


def _filtered_events(request):
    """The audit events the user may read, narrowed by the filter form in the query string."""
    environments = audit_environments(request.user)
    form = AuditFilterForm(request.GET or None, environments=environments)
    if is_admin(request.user):
        # Admins also see events that belong to no environment (configurations, users).
        events = AuditEvent.objects.select_related("environment")
    else:
        events = AuditEvent.objects.filter(environment__in=environments).select_related("environment")
    if form.is_bound:
        events = filter_audit(events, **form.cleaned_data) if form.is_valid() else events.none()
    return form, events


@audit_page
def audit_log(request):
    form, events = _filtered_events(request)
    page = Paginator(events, settings.AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "environments/audit_log.html",
        {"form": form, "page": page, "query": query.urlencode(), "section": "audit"},
    )


@audit_page
def audit_export(request):
    _, events = _filtered_events(request)
    response = StreamingHttpResponse(iter_csv(events.iterator(chunk_size=500)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response
