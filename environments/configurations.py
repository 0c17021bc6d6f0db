"""Configurations, their versions and environments: create, draft, publish.

The portal's forms and the `publish_configuration` command call these, so a
bad document gets the same precise message whichever way it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from portal import inputs
from portal.actor import SYSTEM_ACTOR, Actor

from .audit import record_audit
from .models import Configuration, ConfigurationVersion, Environment
from .publish_impact import PublishImpact, records_left_invalid
from .schema import validate_schema


class ConfigurationError(Exception):
    """A user error in configuration or environment management, with a message fit to show."""


class RecordsLeftInvalid(ConfigurationError):
    """Publishing would leave existing records failing the new schema, and that was not accepted."""

    def __init__(self, impact: PublishImpact):
        self.impact = impact
        super().__init__(
            f"publishing would leave {impact.records} existing record{'s' if impact.records != 1 else ''} "
            f"invalid: {impact.summary()}"
        )


def parse_schema_text(text: str) -> Any:
    """Parse a schema document from JSON text: strict JSON (see `inputs`) holding one object."""
    try:
        document = inputs.loads(text)
    except inputs.JsonRefused as error:
        raise ConfigurationError(f"the document is refused: {error}") from None
    if not isinstance(document, dict):
        raise ConfigurationError('the document must be a JSON object: {"data_types": {...}}')
    return document


def create_configuration(name: str, slug: str = "", *, actor: Actor = SYSTEM_ACTOR) -> Configuration:
    """Create an empty configuration; its first version is a draft saved later."""
    slug = slug or slugify(name)
    if not slug:
        raise ConfigurationError("a configuration needs a name made of letters or digits")
    try:
        with transaction.atomic():
            configuration = Configuration.objects.create(name=name, slug=slug)
            record_audit(actor, "configuration.created", target=configuration)
    except IntegrityError:
        raise ConfigurationError(f'a configuration with the slug "{slug}" already exists') from None
    return configuration


def create_environment(
    name: str,
    slug: str,
    kind: str,
    configuration: Configuration,
    *,
    actor: Actor = SYSTEM_ACTOR,
) -> Environment:
    """Create an environment running `configuration`, with its latest published version if any."""
    if kind not in Environment.Kind.values:
        raise ConfigurationError(
            f'unknown environment kind "{kind}"; expected one of {", ".join(Environment.Kind.values)}'
        )
    latest = configuration.versions.filter(state=ConfigurationVersion.State.PUBLISHED).order_by("-number").first()
    try:
        with transaction.atomic():
            environment = Environment.objects.create(
                name=name, slug=slug, kind=kind, configuration=configuration, published_version=latest
            )
            record_audit(
                actor,
                "environment.created",
                target=environment,
                environment=environment,
                details={"kind": kind, "configuration": configuration.slug},
            )
    except IntegrityError:
        raise ConfigurationError(f'an environment with the slug "{slug}" already exists') from None
    return environment


def save_draft(
    configuration: Configuration,
    schema: Any,
    *,
    note: str = "",
    draft: ConfigurationVersion | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> ConfigurationVersion:
    """Save `schema` as a new draft version, or into the given existing draft.

    Drafts may be incomplete: the schema is checked in full when published.
    It must still be a JSON object that can be stored.
    """
    if not isinstance(schema, dict):
        raise ConfigurationError('the document must be a JSON object: {"data_types": {...}}')
    if problem := inputs.length_problem(note, ConfigurationVersion, "note"):
        raise ConfigurationError(f"the note {problem}")
    try:
        inputs.check(schema)
    except inputs.JsonRefused as error:
        raise ConfigurationError(f"the document is refused: {error}") from None
    with transaction.atomic():
        if draft is None:
            draft = ConfigurationVersion(
                configuration=configuration,
                number=_next_number(configuration),
                created_by=actor.user,
            )
        elif not draft.is_draft:
            raise ConfigurationError(f"version {draft.number} is published; published versions cannot change")
        draft.schema = schema
        draft.note = note
        draft.save()
        record_audit(
            actor,
            "configuration.draft_saved",
            target=draft,
            details={"version": draft.number},
        )
    return draft


def publish_version(
    version: ConfigurationVersion,
    environments: Iterable[Environment],
    *,
    accept_invalid_records: bool = False,
    actor: Actor = SYSTEM_ACTOR,
) -> ConfigurationVersion:
    """Validate the version's schema and make it the published version of each environment.

    All or nothing: if the schema is invalid (`SchemaInvalid`), an environment
    runs another configuration (`ConfigurationError`), or existing records
    would fail the new schema and `accept_invalid_records` is not given
    (`RecordsLeftInvalid`, which says how many and which fields), nothing changes.
    """
    environments = list(environments)
    if not environments:
        raise ConfigurationError("choose at least one environment to publish to")
    for environment in environments:
        if environment.configuration_id != version.configuration_id:
            raise ConfigurationError(
                f'environment "{environment.slug}" runs configuration "{environment.configuration.slug}", '
                f'not "{version.configuration.slug}"'
            )
    validate_schema(version.schema)
    impact = _impact_accepted(version.schema, environments, accept_invalid_records)
    _publish(version, environments, impact, actor=actor)
    return version


def _impact_accepted(schema: dict, environments: list[Environment], accepted: bool) -> PublishImpact:
    """The records the publish leaves invalid; refused (`RecordsLeftInvalid`) unless there are none or accepted."""
    impact = records_left_invalid(schema, environments)
    if impact and not accepted:
        raise RecordsLeftInvalid(impact)
    return impact


def _publish(
    version: ConfigurationVersion,
    environments: list[Environment],
    impact: PublishImpact,
    *,
    actor: Actor,
) -> None:
    left_invalid = {each.environment.pk: each.records for each in impact.environments}
    with transaction.atomic():
        if version.is_draft:
            version.state = ConfigurationVersion.State.PUBLISHED
            version.published_at = timezone.now()
            version.save(update_fields=["state", "published_at"])
        for environment in environments:
            previous = environment.published_version
            environment.published_version = version
            environment.save(update_fields=["published_version"])
            record_audit(
                actor,
                "configuration.published",
                target=version,
                environment=environment,
                details={
                    "version": version.number,
                    "previous_version": previous.number if previous else None,
                    "data_types": version.data_type_names,
                    "invalid_records_accepted": left_invalid.get(environment.pk, 0),
                },
            )


def publish_document(
    schema: Any,
    environment_slugs: Iterable[str],
    *,
    note: str = "",
    accept_invalid_records: bool = False,
    actor: Actor = SYSTEM_ACTOR,
) -> tuple[ConfigurationVersion, PublishImpact]:
    """Store `schema` as a new version of the environments' configuration and publish it to them.

    The environments must exist and share one configuration. Used by the
    `publish_configuration` command; all or nothing, as `publish_version`.
    Returns the version and the records it left invalid (accepted).
    """
    slugs = list(dict.fromkeys(environment_slugs))
    environments = list(Environment.objects.select_related("configuration").filter(slug__in=slugs))
    missing = sorted(set(slugs) - {e.slug for e in environments})
    if missing:
        raise ConfigurationError(f"unknown environment: {', '.join(missing)}")
    configurations = {e.configuration for e in environments}
    if len(configurations) != 1:
        raise ConfigurationError(
            "the environments run different configurations: "
            + ", ".join(f"{e.slug} runs {e.configuration.slug}" for e in environments)
        )
    validate_schema(schema)
    impact = _impact_accepted(schema, environments, accept_invalid_records)
    with transaction.atomic():
        version = save_draft(configurations.pop(), schema, note=note, actor=actor)
        _publish(version, environments, impact, actor=actor)
    return version, impact


def _next_number(configuration: Configuration) -> int:
    # Lock the configuration row so two concurrent drafts cannot take one number.
    Configuration.objects.select_for_update().filter(pk=configuration.pk).first()
    highest = configuration.versions.aggregate(highest=Max("number"))["highest"]
    return (highest or 0) + 1
