"""The Audit log page and its CSV export (queries in environments/audit_log.py)."""

from urllib.parse import urlencode

from django.conf import settings
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from ..access import audit_environments, is_admin
from ..audit_log import EXPORT_KEYS, AuditCursorError, filter_audit, iter_csv, page_of
from ..forms import AuditFilterForm
from ..models import AuditEvent
from .decorators import audit_page


def _filtered_events(request):
    """The audit events the user may read, narrowed by the filter form in the query string."""
    environments = audit_environments(request.user)
    form = AuditFilterForm(request.GET or None, environments=environments)
    if is_admin(request.user):
        # Admins also see events that belong to no environment (configurations, users).
        events = AuditEvent.objects.all()
    else:
        events = AuditEvent.objects.filter(environment__in=environments)
    if form.is_bound:
        events = filter_audit(events, **form.cleaned_data) if form.is_valid() else events.none()
    return form, events


@audit_page
def audit_log(request):
    form, events = _filtered_events(request)
    problem, page = "", None
    try:
        page = page_of(events, after=request.GET.get("after", ""), size=settings.AUDIT_PAGE_SIZE)
    except AuditCursorError as error:
        problem = str(error)
    query = {key: value for key, value in request.GET.items() if key != "after" and value}
    return render(
        request,
        "environments/audit_log.html",
        {
            "form": form,
            "events": page.events if page else [],
            "problem": problem,
            "next_query": urlencode({**query, "after": page.next_cursor}) if page and page.next_cursor else "",
            "first_query": urlencode(query),
            "is_first_page": not request.GET.get("after"),
            "section": "audit",
        },
    )


@audit_page
def audit_export(request):
    form, events = _filtered_events(request)
    # Part of an actor's name is read through the trigram index, not in order: keys first (audit_log.in_batches).
    by_actor = form.is_bound and form.is_valid() and form.cleaned_data["actor"]
    rows = iter_csv(events, keys=EXPORT_KEYS if by_actor else None)
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response
