"""JSON instead of HTML for what happens under /api/ before a Data API view runs (unknown URL, wrong method)."""

from django.http import JsonResponse

_MESSAGES = {404: ("not_found", "no such endpoint"), 405: ("method_not_allowed", "this endpoint does not allow {}")}


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code in _MESSAGES
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            code, message = _MESSAGES[response.status_code]
            replacement = JsonResponse(
                {"error": {"code": code, "message": message.format(request.method), "details": None}},
                status=response.status_code,
            )
            if "Allow" in response:
                replacement["Allow"] = response["Allow"]
            return replacement
        return response
