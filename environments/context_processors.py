"""What every portal page needs: the environments for the switcher and the current one."""

from .access import can_read_audit, is_admin, visible_environments
from .preferences import environment_worked_in
from .workers import silence


def portal(request):
    if not request.user.is_authenticated:
        return {}
    environments = list(visible_environments(request.user))
    # Outside an environment's pages, the environment the person works in stays in the switcher and the menu.
    current = getattr(request, "environment", None) or environment_worked_in(
        environments, getattr(request, "last_environment_id", None)
    )
    return {
        # A switcher with one option switches nothing: shown only when there is somewhere else to go.
        "switchable_environments": environments if len(environments) > 1 else [],
        "current_environment": current,
        "current_role": getattr(request, "role", None),
        "user_is_admin": is_admin(request.user),
        "user_reads_audit": can_read_audit(request.user),
        # Every page says so when nothing is being sent (templates/base.html).
        "worker_silence": silence(),
    }
