"""Permission checks every portal view goes through; menus only mirror them."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from portal.actor import Actor

from ..access import can_manage, can_read_audit, is_admin, role_in
from ..models import Environment
from ..preferences import remember_environment


def environment_page(view=None, *, manage: bool = False):
    """Resolve `<slug>` to an environment the user may see, else 404.

    With `manage=True`, Viewers get 403: they see but cannot change.
    The view receives the environment; `request.environment` and
    `request.role` are set for templates, and `request.actor` (who acts,
    from where) for the services the view calls.
    """

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, slug, *args, **kwargs):
            environment = get_object_or_404(
                Environment.objects.select_related("configuration", "published_version"), slug=slug
            )
            role = role_in(request.user, environment)
            if role is None:
                # 404, not 403: do not confirm that an environment exists to someone without access.
                raise Http404("No such environment.")
            if manage and not can_manage(role):
                raise PermissionDenied("Viewers can look but not change: ask an Admin for the Program Director role.")
            request.environment, request.role = environment, role
            request.actor = Actor.from_request(request)
            remember_environment(request, environment)
            return view(request, environment, *args, **kwargs)

        return wrapped

    return decorator(view) if view is not None else decorator


def _user_page(allowed, refusal: str):
    """A decorator for pages that one check on the user guards, with the sentence a refused user reads.

    Sets `request.actor` for the services the view calls."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not allowed(request.user):
                raise PermissionDenied(refusal)
            request.actor = Actor.from_request(request)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


admin_page = _user_page(is_admin, "This page is for Admins.")
audit_page = _user_page(can_read_audit, "The audit log is for Admins and Program Directors.")
