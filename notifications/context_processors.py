"""The unread count every portal page shows in its header."""

from .inbox import unread_count


def unread(request) -> dict:
    if not request.user.is_authenticated:
        return {}
    return {"unread_notices": unread_count(request.user)}
