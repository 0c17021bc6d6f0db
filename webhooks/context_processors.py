"""What every portal page shows of webhooks: how many need attention in each environment (the switcher)."""

from django.db.models import Count

from environments.access import visible_environments

from .models import Webhook


def attention(request) -> dict:
    if not request.user.is_authenticated:
        return {}
    counts = (
        Webhook.objects.needing_attention()
        .filter(environment__in=visible_environments(request.user))
        .values("environment")
        .annotate(n=Count("id"))
        .values_list("environment", "n")
    )
    return {"environment_attention": dict(counts)}
