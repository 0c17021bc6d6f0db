"""Before a publish: what it changes for integrators, and what it breaks in the environments chosen.

The version page shows `preview_publish` before anything is published; a
publish with a breaking change waits for a confirmation naming each one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .models import ConfigurationVersion, Environment
from .publish_impact import PublishImpact, records_left_invalid
from .schema import publish_problems
from .schema_diff import SchemaChange, schema_changes, with_record_counts


@dataclass
class PublishPreview:
    """The diff of a version against the published one, each breaking change with its invalid-record count."""

    baseline: ConfigurationVersion | None
    changes: list[SchemaChange]
    impact: PublishImpact | None

    @property
    def breaking(self) -> list[SchemaChange]:
        return [change for change in self.changes if change.breaking]


def latest_published(version: ConfigurationVersion) -> ConfigurationVersion | None:
    """The configuration's newest published version other than `version`: what integrators see today."""
    return (
        version.configuration.versions.filter(state=ConfigurationVersion.State.PUBLISHED)
        .exclude(pk=version.pk)
        .order_by("-number")
        .first()
    )


def preview_publish(version: ConfigurationVersion, environments: Iterable[Environment]) -> PublishPreview:
    """The changes `version` makes against the latest published version, counted in `environments`' records.

    Records are only counted once the schema could be published (the scan
    needs a valid schema); the words of the diff are always given.
    """
    baseline = latest_published(version)
    changes = schema_changes(baseline.schema if baseline else {}, version.schema)
    impact = None
    if not publish_problems(version.schema):
        impact = records_left_invalid(version.schema, environments)
        changes = with_record_counts(changes, impact)
    return PublishPreview(baseline, changes, impact)


def changes_for(schema: dict, environments: Iterable[Environment]) -> list[SchemaChange]:
    """What publishing `schema` changes for integrators of `environments`: each change against the schema an
    environment runs now, named once, breaking ones first."""
    found: dict[str, SchemaChange] = {}
    for environment in environments:
        for change in schema_changes(environment.schema, schema):
            found.setdefault(str(change), change)
    return sorted(found.values(), key=lambda change: not change.breaking)


def breaking_for(version: ConfigurationVersion, environments: Iterable[Environment]) -> list[SchemaChange]:
    """Breaking changes `version` makes to any of `environments` against the schema each runs now."""
    moving = [environment for environment in environments if environment.published_version_id != version.pk]
    return [change for change in changes_for(version.schema, moving) if change.breaking]
