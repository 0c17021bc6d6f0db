"""Scopes: `<data type>:read` and `<data type>:write`, drawn from the environment's published schema."""

from __future__ import annotations

from environments.models import Environment

ACTIONS = ("read", "write")


def available_scopes(environment: Environment) -> list[str]:
    return [f"{data_type}:{action}" for data_type in environment.data_types for action in ACTIONS]


def unknown_scopes(environment: Environment, scopes: list[str]) -> list[str]:
    allowed = set(available_scopes(environment))
    return [scope for scope in scopes if scope not in allowed]


def parse_scope_parameter(value: str) -> list[str]:
    """RFC 6749 §3.3: space-delimited, case-sensitive; order does not matter."""
    return sorted(set(value.split()))
