"""Error pages: a clear sentence, never a stack trace."""

from django.conf import settings
from django.http import Http404
from django.shortcuts import render

# Paths whose errors are JSON (the Data API, OAuth): the portal's pages are everything else.
_NOT_PORTAL = ("/api/", "/oauth/")


def forbidden(request, exception=None):
    message = str(exception) if exception and str(exception) else "You do not have permission to do that."
    return render(request, "errors/403.html", {"message": message}, status=403)


def not_found(request, exception=None):
    return render(request, "errors/404.html", status=404)


def server_error(request):
    # No context processors' data is trusted here: the error may come from them.
    from django.http import HttpResponseServerError
    from django.template import loader

    return HttpResponseServerError(loader.get_template("errors/500.html").render())


class PortalNotFoundMiddleware:
    """With DEBUG on, a portal page that is not found gets the portal's own 404 page, as in production.

    Django answers every 404 with its technical page while DEBUG is on (`make run` runs with it on). That page is
    rendered by Django's own template engine, so neither a template of ours nor our stylesheet can reach it, and
    its list of URL patterns is wider than a phone. So for portal paths both kinds of 404 get `not_found` here: a
    URL that matches no pattern (no view was resolved) and an Http404 a view raises. The Data API and OAuth keep
    their JSON errors; with DEBUG off Django calls `handler404` itself and this does nothing.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            settings.DEBUG
            and response.status_code == 404
            and request.resolver_match is None
            and not request.path.startswith(_NOT_PORTAL)
        ):
            return not_found(request)
        return response

    def process_exception(self, request, exception):
        if settings.DEBUG and isinstance(exception, Http404) and not request.path.startswith(_NOT_PORTAL):
            return not_found(request, exception)
        return None
