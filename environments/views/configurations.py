"""Configurations (Admins): versions, drafts, publishing; and creating environments."""

import re

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render

from ..configurations import (
    ConfigurationError,
    RecordsLeftInvalid,
    create_configuration,
    create_environment,
    publish_version,
    save_draft,
)
from ..forms import ConfigurationForm, DraftForm, EnvironmentForm, PublishForm
from ..models import Configuration, ConfigurationVersion
from ..publish_impact import records_left_invalid
from ..publish_preview import breaking_for, preview_publish
from ..schema import SchemaInvalid, publish_problems
from ..schema_diff import with_record_counts
from ..schema_lines import located_problems
from .decorators import admin_page


@admin_page
def configuration_list(request):
    configurations = Configuration.objects.prefetch_related("environments__published_version", "versions")
    return render(
        request, "environments/configuration_list.html", {"configurations": configurations, "section": "configurations"}
    )


@admin_page
def configuration_new(request):
    form = ConfigurationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            configuration = create_configuration(
                form.cleaned_data["name"], form.cleaned_data["slug"], actor=request.actor
            )
        except ConfigurationError as error:
            form.add_error("slug", str(error))
        else:
            messages.success(request, f"Configuration “{configuration.name}” created. Add its first draft.")
            return redirect("configuration_detail", slug=configuration.slug)
    return render(
        request,
        "environments/form_page.html",
        {"form": form, "title": "New configuration", "section": "configurations"},
    )


@admin_page
def configuration_detail(request, slug):
    configuration = get_object_or_404(Configuration, slug=slug)
    return render(
        request,
        "environments/configuration_detail.html",
        {
            "configuration": configuration,
            "versions": configuration.versions.select_related("created_by"),
            "environments": configuration.environments.select_related("published_version"),
            "section": "configurations",
        },
    )


@admin_page
def draft_new(request, slug):
    configuration = get_object_or_404(Configuration, slug=slug)
    latest = configuration.versions.order_by("-number").first()
    initial = {"schema": DraftForm.initial_text(latest.schema if latest else {"data_types": {}})}
    form = DraftForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        version = save_draft(
            configuration, form.cleaned_data["schema"], note=form.cleaned_data["note"], actor=request.actor
        )
        _report_saved(request, version)
        return redirect("version_detail", slug=slug, number=version.number)
    return render(
        request,
        "environments/form_page.html",
        {"form": form, "title": f"New draft of {configuration.name}", "wide": True, "section": "configurations"},
    )


@admin_page
def version_detail(request, slug, number):
    version = get_object_or_404(
        ConfigurationVersion.objects.select_related("configuration"), configuration__slug=slug, number=number
    )
    configuration = version.configuration
    action = request.POST.get("action")
    draft_form = None
    if version.is_draft:
        draft_form = DraftForm(
            request.POST if action in ("save", "check") else None,
            initial={"schema": DraftForm.initial_text(version.schema), "note": version.note},
        )
    publishing = action == "publish"
    publish_form = PublishForm(
        request.POST if publishing else None,
        configuration=configuration,
        confirming="accept_invalid_records" in request.POST,
    )
    impact, breaking = None, []
    if request.method == "POST":
        if action == "save" and draft_form is not None and draft_form.is_valid():
            if _saved(request, version, draft_form):
                return redirect("version_detail", slug=slug, number=number)
        elif publishing and publish_form.is_valid():
            published, publish_form, impact, breaking = _published(request, version, publish_form)
            if published:
                return redirect("version_detail", slug=slug, number=number)
    return render(
        request,
        "environments/version_detail.html",
        {
            "configuration": configuration,
            "version": version,
            "draft_form": draft_form,
            "publish_form": publish_form,
            "impact": impact,
            "breaking": breaking,
            "preview": preview_publish(version, configuration.environments.select_related("published_version")),
            **_editor_context(version, draft_form, checking=action == "check"),
            "running_on": version.environments.all(),
            "section": "configurations",
        },
    )


def _editor_context(version, draft_form, *, checking: bool) -> dict:
    """The schema's text and every problem at its line: of the text just checked (nothing saved), or of the
    saved draft. `checked` says a check was asked for, so the page can say it found nothing."""
    saved_text = DraftForm.initial_text(version.schema)
    located = []
    if checking and draft_form is not None and draft_form.is_valid():
        located = located_problems(draft_form.data["schema"], draft_form.cleaned_data["schema"])
    elif version.is_draft and not (draft_form is not None and draft_form.is_bound):
        located = located_problems(saved_text, version.schema)
    lines = sorted({each.line for each in located} | set(_syntax_error_lines(draft_form)))
    return {
        "schema_text": saved_text,
        "publish_problems": located,
        "problem_lines": ",".join(map(str, lines)),
        "checked": checking and draft_form is not None and draft_form.is_valid(),
    }


def _syntax_error_lines(draft_form) -> list[int]:
    """The line a JSON syntax error is at, from its message (`... at line 3, column 5`)."""
    if draft_form is None or not draft_form.is_bound:
        return []
    return [
        int(found) for error in draft_form.errors.get("schema", []) for found in re.findall(r"at line (\d+)", error)
    ]


def _saved(request, version, draft_form) -> bool:
    """Save the draft the form holds; on a refusal, say why and return False."""
    try:
        save_draft(
            version.configuration,
            draft_form.cleaned_data["schema"],
            note=draft_form.cleaned_data["note"],
            draft=version,
            actor=request.actor,
        )
    except ConfigurationError as error:
        messages.error(request, str(error))
        return False
    _report_saved(request, version)
    return True


def _published(request, version, publish_form):
    """Publish the version to the chosen environments. Returns whether it was published, the form to show
    (asking for confirmation when a change breaks integrators or leaves records invalid), and, when
    asking, the records left invalid and the breaking changes to name."""
    environments = publish_form.cleaned_data["environments"]
    confirmed = publish_form.cleaned_data.get("accept_invalid_records", False)
    breaking = breaking_for(version, environments)
    if breaking and not confirmed and not publish_problems(version.schema):
        confirm = PublishForm(request.POST, configuration=version.configuration, confirming=True)
        impact = records_left_invalid(version.schema, environments)
        return False, confirm, impact, with_record_counts(breaking, impact)
    try:
        publish_version(version, environments, accept_invalid_records=confirmed, actor=request.actor)
    except RecordsLeftInvalid as error:
        confirm = PublishForm(request.POST, configuration=version.configuration, confirming=True)
        return False, confirm, error.impact, with_record_counts(breaking, error.impact)
    except SchemaInvalid as error:
        for problem in error.problems:
            publish_form.add_error(None, f"Cannot publish: {problem}")
        return False, publish_form, None, []
    except ConfigurationError as error:
        publish_form.add_error(None, f"Cannot publish: {error}")
        return False, publish_form, None, []
    names = ", ".join(e.name for e in environments)
    messages.success(request, f"Version {version.number} published to {names}.")
    return True, publish_form, None, []


def _report_saved(request, version) -> None:
    """Saved, and at once whether it could be published: the page lists what stops it."""
    problems = publish_problems(version.schema)
    if problems:
        messages.warning(
            request,
            f"Draft version {version.number} saved, but it cannot be published yet: "
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} to fix, listed below.",
        )
    else:
        messages.success(request, f"Draft version {version.number} saved.")


@admin_page
def environment_new(request):
    form = EnvironmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            environment = create_environment(
                data["name"], data["slug"], data["kind"], data["configuration"], actor=request.actor
            )
        except ConfigurationError as error:
            form.add_error("slug", str(error))
        else:
            messages.success(request, f"Environment “{environment.name}” created.")
            return redirect("overview", slug=environment.slug)
    return render(
        request, "environments/form_page.html", {"form": form, "title": "New environment", "section": "configurations"}
    )
