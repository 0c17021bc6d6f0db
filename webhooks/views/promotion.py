"""Promote an integration to another environment: choose, review the draft, promote; new secrets shown once."""

from django import forms
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from environments.access import can_manage, role_in
from environments.portal_forms import PortalForm
from environments.views.decorators import environment_page

from ..promotion import PromotionRefused, plan_lines, plan_promotion, promote


class PromotionForm(PortalForm):
    target = forms.ChoiceField(label="Promote to")
    webhooks = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one webhook to promote."},
    )

    def __init__(self, *args, environment, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Environments sharing the configuration that this person may change.
        targets = environment.configuration.environments.exclude(pk=environment.pk).order_by("name")
        self.targets = {e.slug: e for e in targets if can_manage(role_in(user, e))}
        self.fields["target"].choices = [
            (slug, f"{e.name} ({e.get_kind_display()})") for slug, e in self.targets.items()
        ]
        self.fields["webhooks"].choices = [(w.name, w.name) for w in environment.webhooks.order_by("name")]


@never_cache
@environment_page(manage=True)
def promote_integration(request, environment):
    form = PromotionForm(request.POST or None, environment=environment, user=request.user)
    context = {"section": "webhooks", "form": form, "draft": None, "created": None}
    if request.method == "POST" and form.is_valid():
        target = form.targets[form.cleaned_data["target"]]
        try:
            plan = plan_promotion(environment, target, form.cleaned_data["webhooks"])
            context["draft"] = plan_lines(plan)
            context["problems"] = plan.problems
            context["target"] = target
            if request.POST.get("action") == "promote" and not plan.problems:
                context["created"] = promote(plan, actor=request.actor)
        except PromotionRefused as error:
            form.add_error(None, str(error))
    return render(request, "webhooks/promote.html", context)
