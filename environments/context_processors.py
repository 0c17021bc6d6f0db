"""What every portal page needs: the environments for the switcher and the current one."""

from .access import can_read_audit, is_admin, visible_environments
from .workers import silence


def portal(request):
    if not request.user.is_authenticated:
        return {}
    return {
        "switchable_environments": list(visible_environments(request.user)),
        "current_environment": getattr(request, "environment", None),
        "current_role": getattr(request, "role", None),
        "user_is_admin": is_admin(request.user),
        "user_reads_audit": can_read_audit(request.user),
        # Every page says so when nothing is being sent (templates/base.html).
        "worker_silence": silence(),
    }
