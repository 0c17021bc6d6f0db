"""Functions named in settings (dotted paths), imported once: how one app calls another that it must not import."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.utils.module_loading import import_string


def named_functions(paths: Iterable[str]) -> tuple[Callable[..., Any], ...]:
    """The functions `paths` name (a setting's value), imported the first time and kept."""
    return _imported(tuple(paths))


@functools.cache
def _imported(paths: tuple[str, ...]) -> tuple[Callable[..., Any], ...]:
    # Keyed on the names, so a test that overrides the setting gets its own functions.
    return tuple(import_string(path) for path in paths)
