"""What every refused input must look like to the person who sent it: a clear 4xx, never a trace."""


def assert_refused(response, status: int = 400) -> str:
    """The response is `status` with no stack trace; returns its text for the message checks."""
    text = response.content.decode()
    assert response.status_code == status, (response.status_code, text[:500])
    assert "Traceback" not in text and "Exception Value" not in text
    return text


def assert_json_refused(response, status: int = 400, code: str | None = None) -> dict:
    """A Data API refusal: `{"error": {"code", "message", "details"}}` with `status` (and `code` if given)."""
    assert_refused(response, status)
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_oauth_refused(response, error: str = "invalid_request", status: int = 400) -> str:
    """An RFC 6749 §5.2 refusal, never cached; returns its description."""
    assert_refused(response, status)
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    return body["error_description"]


def assert_command_refused(*args: str, says: str) -> str:
    """The management command refuses with one readable line (Django prints it and exits 1)."""
    from io import StringIO

    import pytest
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as refused:
        call_command(*args, stdout=StringIO(), stderr=StringIO())
    message = str(refused.value)
    assert "\n" not in message and "Traceback" not in message
    assert says in message, message
    return message
